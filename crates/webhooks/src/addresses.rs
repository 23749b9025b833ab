//! Which receivers deliveries may reach. Organizations choose webhook URLs,
//! so by default a delivery never goes to a loopback, private, link-local
//! or otherwise non-public address (the gateway's own network, a cloud
//! metadata service): IP literals are refused when a subscription is made
//! and again at delivery, and host names are resolved by [`PublicOnly`],
//! which drops such addresses, so a name cannot be re-pointed at them later.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is an address on the public internet. An IPv6 address that
/// embeds an IPv4 one is judged on both: NAT64 and 6to4 gateways, and hosts
/// that accept IPv4-compatible or -mapped forms, deliver to the embedded
/// IPv4 address, so `[64:ff9b::7f00:1]` must count as 127.0.0.1.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            is_public_v6(v6) && embedded_v4(v6).into_iter().flatten().all(is_public_v4)
        }
    }
}

/// The IPv4 addresses an IPv6 address carries, by the well-known layouts.
fn embedded_v4(ip: Ipv6Addr) -> [Option<Ipv4Addr>; 2] {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        // ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated), ::a.b.c.d
        // (compatible), and 64:ff9b::a.b.c.d (NAT64 well-known prefix).
        [0, 0, 0, 0, 0, 0xffff, hi, lo]
        | [0, 0, 0, 0, 0xffff, 0, hi, lo]
        | [0, 0, 0, 0, 0, 0, hi, lo]
        | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => [v4(hi, lo), None],
        // 6to4: 2002:AABB:CCDD::/48.
        [0x2002, hi, lo, ..] => [v4(hi, lo), None],
        // Teredo: the server's address, and the client's with every bit flipped.
        [0x2001, 0, server_hi, server_lo, _, _, client_hi, client_lo] => {
            [v4(server_hi, server_lo), v4(!client_hi, !client_lo)]
        }
        _ => [None, None],
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT).
        || (a == 100 && (b & 0b1100_0000) == 64)
        // 198.18.0.0/15, benchmarking; 240.0.0.0/4, reserved.
        || (a == 198 && (b & 0xfe) == 18)
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, fec0::/10 site-local.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // 64:ff9b:1::/48, NAT64 for local use: its IPv4 layout is the
        // operator's choice, so nothing in it can be judged public.
        || (first == 0x64 && second == 0xff9b && ip.segments()[2] == 1)
        // 2001:db8::/32, documentation.
        || (first == 0x2001 && second == 0x0db8))
}

/// The IP of a URL's host when it is an IP literal.
pub(crate) fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// A resolver that answers only public addresses.
pub(crate) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("`{host}` has no public address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_that_embed_an_internal_ipv4_address_are_not_public() {
        for ip in [
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::8.8.8.8",
            "64:ff9b:1:abcd::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2002:c0a8:101:1::5",
            "::127.0.0.1",
            "::10.1.2.3",
            "::169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:0:127.0.0.1",
            // Teredo with a loopback server, then with a private client (flipped).
            "2001:0:7f00:1::1",
            "2001:0:808:808:0:0:f5ff:fffe",
            "fec0::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "::ffff:1.1.1.1",
            "2001:0:808:808:0:0:f7f7:f7f7",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
