//! `sqlx::migrate!` embeds the migrations at compile time; without this, a
//! new migration file would not rebuild the crate and would be missing from
//! the binary (what `sqlx migrate build-script` generates).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
