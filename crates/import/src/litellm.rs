//! LiteLLM proxy `config.yaml` → Tollgate configuration.
//!
//! - `model_list`: entries sharing a `model_name` become one model with
//!   several deployments (weights from `weight`, else from `rpm`/`tpm` as
//!   LiteLLM's simple-shuffle weighs them; `rpm`/`tpm` also cap each one);
//!   `litellm_params.model`'s provider prefix picks the provider kind or
//!   preset, `api_base` its URL, `api_key` its key reference;
//!   `model_info` (or `litellm_params`) prices, limits and capabilities.
//! - `router_settings` / `litellm_settings`: `fallbacks` and
//!   `default_fallbacks` become the file's `fallbacks`; retries, cooldowns,
//!   timeouts and Redis become settings of `tollgate serve`;
//!   `model_group_alias` becomes a model of its own.
//! - Everything else is named in the notes. Key values never reach the
//!   output, the notes or the settings.

use crate::output::{AutoDetect, Config, Deployment, Model, Ordered, Price, Provider};
use crate::{Conversion, ImportError};
use serde_norway::{Mapping, Value};
use tollgate_core::catalog::{ModelMode, ProviderKind};

/// `litellm_params` keys the importer maps; any other is named in the notes.
const MAPPED_PARAMS: [&str; 10] = [
    "model",
    "api_key",
    "api_base",
    "rpm",
    "tpm",
    "weight",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "api_version",
];

/// Request parameters LiteLLM sets on every call of a deployment.
const SAMPLING_PARAMS: [&str; 8] = [
    "temperature",
    "max_tokens",
    "top_p",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "response_format",
];

/// Converts the text of a LiteLLM proxy `config.yaml`.
pub fn convert(text: &str) -> Result<Conversion, ImportError> {
    let root: Value = serde_norway::from_str(text).map_err(|e| ImportError::Yaml(e.to_string()))?;
    let mut importer = Importer::default();
    let Some(root) = root.as_mapping() else {
        return Err(ImportError::Yaml("the top level is not a mapping".into()));
    };
    for (key, _) in root {
        let key = key.as_str().unwrap_or_default();
        if !matches!(
            key,
            "model_list"
                | "router_settings"
                | "litellm_settings"
                | "general_settings"
                | "environment_variables"
        ) {
            importer.note(format!("`{key}`: not a section Tollgate maps"));
        }
    }
    let list = root
        .get("model_list")
        .and_then(Value::as_sequence)
        .ok_or_else(|| ImportError::NoModels("`model_list` is missing or not a list".into()))?;
    let router = root.get("router_settings").and_then(Value::as_mapping);
    let module = root.get("litellm_settings").and_then(Value::as_mapping);
    let strategy = router
        .and_then(|r| r.get("routing_strategy"))
        .and_then(Value::as_str)
        .unwrap_or("simple-shuffle");

    let groups = group_entries(list, &mut importer);
    for group in &groups {
        importer.add_group(group, strategy);
    }
    if importer.models.is_empty() {
        return Err(ImportError::NoModels(format!(
            "none of its {} entries could be mapped: {}",
            list.len(),
            importer.notes.join("; ")
        )));
    }
    for settings in [router, module].into_iter().flatten() {
        importer.fallbacks(settings);
    }
    // Router settings are the more specific: they win over module ones.
    if let Some(module) = module {
        importer.litellm_settings(module);
    }
    if let Some(router) = router {
        importer.router_settings(router, strategy);
    }
    if let Some(general) = root.get("general_settings").and_then(Value::as_mapping) {
        importer.general_settings(general);
    }
    if let Some(vars) = root
        .get("environment_variables")
        .and_then(Value::as_mapping)
    {
        let names: Vec<&str> = vars.keys().filter_map(Value::as_str).collect();
        importer.note(format!(
            "`environment_variables` ({}): not written; set them in the environment of `tollgate serve` if they are still needed",
            names.join(", ")
        ));
    }
    importer.finish()
}

/// One `model_name` and its `model_list` entries (with their indexes), in
/// the order the names first appear.
struct Group<'a> {
    name: String,
    entries: Vec<(usize, &'a Mapping)>,
}

fn group_entries<'a>(list: &'a [Value], importer: &mut Importer) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let Some(entry) = entry.as_mapping() else {
            importer.note(format!("model_list[{i}]: not a mapping; skipped"));
            continue;
        };
        let Some(name) = entry.get("model_name").and_then(scalar) else {
            importer.note(format!("model_list[{i}]: no `model_name`; skipped"));
            continue;
        };
        match groups.iter_mut().find(|g| g.name == name) {
            Some(group) => group.entries.push((i, entry)),
            None => groups.push(Group {
                name,
                entries: vec![(i, entry)],
            }),
        }
    }
    groups
}

#[derive(Default)]
struct Importer {
    providers: Ordered<Provider>,
    models: Vec<Model>,
    fallbacks: Ordered<Vec<String>>,
    settings: Vec<(String, String)>,
    notes: Vec<String>,
    /// A `*` model name: LiteLLM then serves any model of its providers,
    /// which Tollgate's auto-detection does too.
    wildcard: bool,
}

/// Where a deployment is served, before it gets a provider name.
struct Target {
    /// The provider's base name (`openai`, `azure`, `groq`, …).
    base: String,
    provider: Provider,
    upstream: String,
    /// The source holds the key itself: the provider gets a variable of
    /// its own to read it from, named after the provider.
    literal_key: bool,
}

impl Importer {
    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn setting(&mut self, name: &str, value: String) {
        self.settings.retain(|(n, _)| n != name);
        self.settings.push((name.to_owned(), value));
    }

    fn add_group(&mut self, group: &Group, strategy: &str) {
        if group.name.contains('*') {
            self.wildcard = true;
            self.note(format!(
                "model_name `{}`: a wildcard; Tollgate's auto-detection (left on) serves \
                 `provider/model` and well-known names of the configured providers instead",
                group.name
            ));
            return;
        }
        let mut deployments: Vec<Deployment> = Vec::new();
        let mut info: Option<ModelInfo> = None;
        let weights = Weights::of(group, strategy);
        for &(i, entry) in &group.entries {
            let at = format!("model_list[{i}] (`{}`)", group.name);
            let params = entry.get("litellm_params").and_then(Value::as_mapping);
            let Some(params) = params else {
                self.note(format!("{at}: no `litellm_params`; skipped"));
                continue;
            };
            let this_info = ModelInfo::of(entry, params);
            if let Some(mode) = &this_info.unsupported_mode {
                self.note(format!(
                    "{at}: mode `{mode}` (Tollgate serves chat and embeddings); skipped"
                ));
                continue;
            }
            let Some(target) = self.target(params, &at) else {
                continue;
            };
            for key in params.keys().filter_map(Value::as_str) {
                if !MAPPED_PARAMS.contains(&key) {
                    let hint = if SAMPLING_PARAMS.contains(&key) {
                        " (Tollgate sends the client's own parameters as they are)"
                    } else {
                        ""
                    };
                    self.note(format!("{at}: litellm_params.{key} is not mapped{hint}"));
                }
            }
            let name = self.provider_for(&target, &deployments);
            if target.literal_key {
                let var = format!("{}_API_KEY", env_name(&name));
                self.note(format!(
                    "{at}: api_key is a literal value and is not written; provider `{name}` reads `${{{var}}}`: export {var} with the key"
                ));
            }
            deployments.push(Deployment {
                provider: name,
                upstream: target.upstream,
                weight: weights.weight(entry, params),
                rpm: number(entry, params, "rpm"),
                tpm: number(entry, params, "tpm"),
            });
            match &info {
                None => info = Some(this_info),
                Some(first)
                    if first.price.is_some()
                        && this_info.price.is_some()
                        && first.price != this_info.price =>
                {
                    self.note(format!(
                        "{at}: a price other than the first deployment's; Tollgate bills a model at one price (the first one's)"
                    ));
                }
                Some(_) => {}
            }
        }
        let Some(info) = info else {
            return;
        };
        let model = self.model(&group.name, deployments, info);
        self.models.push(model);
    }

    /// The provider kind, base URL, key reference and upstream name of one
    /// deployment, or `None` (with a note) when Tollgate cannot reach it.
    fn target(&mut self, params: &Mapping, at: &str) -> Option<Target> {
        let Some(model) = params.get("model").and_then(scalar) else {
            self.note(format!("{at}: no litellm_params.model; skipped"));
            return None;
        };
        let (prefix, rest) = match model.split_once('/') {
            Some((prefix, rest)) => (prefix.to_owned(), rest.to_owned()),
            None => (infer_prefix(&model).to_owned(), model.clone()),
        };
        let api_base = params
            .get("api_base")
            .and_then(scalar)
            .map(|s| reference(&s));
        let Some(route) = Route::of(&prefix) else {
            self.note(format!(
                "{at}: provider `{prefix}` (model `{model}`) has no Tollgate adapter; skipped"
            ));
            return None;
        };
        let base_url = match (route.base_url(api_base.as_deref()), api_base) {
            (Some(url), _) => url,
            (None, Some(other)) => {
                self.note(format!(
                    "{at}: api_base `{other}` is not an http(s) URL; skipped"
                ));
                return None;
            }
            (None, None) => {
                self.note(format!(
                    "{at}: provider `{prefix}` needs an api_base; skipped"
                ));
                return None;
            }
        };
        // `user:password@` in the URL is a credential: never written.
        let base_url = match without_userinfo(&base_url) {
            Some(bare) => {
                self.note(format!(
                    "{at}: api_base holds credentials (`user:password@`): not written; \
                     the provider's base_url is {bare} (give the endpoint's key as api_key)"
                ));
                bare
            }
            None => base_url,
        };
        // `${AZURE_API_BASE}/openai/v1`: the variable's value is used as
        // it is, and LiteLLM's examples end it with a `/`.
        if let Some((name, path)) = base_url
            .strip_prefix("${")
            .and_then(|rest| rest.split_once('}'))
            && !path.is_empty()
        {
            self.note(format!(
                "{at}: base_url is {base_url}: set {name} without a trailing `/`"
            ));
        }
        if prefix == "huggingface" {
            self.note(format!(
                "{at}: served as an OpenAI-compatible (TGI) endpoint at {base_url}"
            ));
        }
        if prefix == "azure" && params.get("api_version").is_some() {
            self.note(format!(
                "{at}: api_version dropped: Tollgate calls Azure OpenAI's v1 API ({base_url}), which takes none"
            ));
        }
        let base = base_name(&prefix, &base_url, route);
        let mut literal_key = false;
        let (api_key, keyless) = match params.get("api_key").and_then(scalar) {
            Some(key) if key.starts_with("os.environ/") => (Some(reference(&key)), false),
            // LiteLLM's placeholder for an endpoint that takes no key
            // (`api_key: none` before a self-hosted vLLM): none is sent.
            Some(key) if key.trim().is_empty() || key.trim().eq_ignore_ascii_case("none") => {
                (None, true)
            }
            // Never written: `provider_for` names the variable to set instead.
            Some(_) => {
                literal_key = true;
                (None, false)
            }
            None => match route.key_env {
                Some(var) => (Some(format!("${{{var}}}")), false),
                None => (None, true),
            },
        };
        Some(Target {
            base,
            provider: Provider {
                kind: route.kind.as_str(),
                base_url,
                api_key,
                keyless,
            },
            upstream: rest,
            literal_key,
        })
    }

    /// The name of a provider equal to `target`'s that this model's
    /// deployments do not use yet, declared if needed: Tollgate lets a
    /// provider serve a model once, so a second deployment on the same
    /// endpoint gets a twin provider.
    /// A literal key always gets a provider of its own (two entries may
    /// hold two keys of one provider).
    fn provider_for(&mut self, target: &Target, taken: &[Deployment]) -> String {
        let reusable = self.providers.0.iter().find(|(name, p)| {
            !target.literal_key
                && *p == target.provider
                && !taken.iter().any(|d| &d.provider == name)
        });
        if let Some((name, _)) = reusable {
            return name.clone();
        }
        let mut name = target.base.clone();
        let mut n = 2;
        while self.providers.get(&name).is_some() {
            name = format!("{}-{n}", target.base);
            n += 1;
        }
        let mut provider = target.provider.clone();
        if target.literal_key {
            provider.api_key = Some(format!("${{{}_API_KEY}}", env_name(&name)));
        }
        self.providers.0.push((name.clone(), provider));
        name
    }

    fn model(&mut self, id: &str, mut deployments: Vec<Deployment>, info: ModelInfo) -> Model {
        // Known models keep the built-in catalog's price and limits unless
        // the source gives its own.
        let known = info
            .base_model
            .as_deref()
            .and_then(|base| builtin(base.rsplit('/').next().unwrap_or(base)))
            .or_else(|| builtin(&deployments[0].upstream))
            .or_else(|| builtin(id));
        let price = info.price.or(known.as_ref().map(|k| k.price));
        if price.is_none() {
            self.note(format!(
                "model `{id}`: no price in model_info and none in Tollgate's built-in catalog: calls cost 0 until `price` is set"
            ));
        }
        let mut model = Model {
            id: id.to_owned(),
            provider: None,
            upstream: None,
            deployments: None,
            mode: (info.mode == ModelMode::Embedding).then_some("embedding"),
            tier: known.as_ref().map(|k| k.tier),
            quality: known.as_ref().map(|k| k.quality),
            context_window: info
                .context_window
                .or(known.as_ref().map(|k| k.context_window)),
            max_output_tokens: info
                .max_output_tokens
                .or(known.as_ref().map(|k| k.max_output_tokens)),
            supports_tools: info.supports_tools,
            supports_vision: info.supports_vision,
            price,
        };
        let single = deployments.len() == 1
            && deployments[0].weight == 1
            && deployments[0].rpm.is_none()
            && deployments[0].tpm.is_none();
        if single {
            let d = deployments.remove(0);
            model.provider = Some(d.provider);
            model.upstream = (d.upstream != id).then_some(d.upstream);
        } else {
            model.deployments = Some(deployments);
        }
        model
    }

    fn mode_of(&self, id: &str) -> Option<Option<&'static str>> {
        self.models.iter().find(|m| m.id == id).map(|m| m.mode)
    }

    /// `fallbacks: [{model: [fallback, …]}]` and `default_fallbacks: [...]`.
    fn fallbacks(&mut self, settings: &Mapping) {
        let mut pairs: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(list) = settings.get("fallbacks") {
            for item in list
                .as_sequence()
                .map(Vec::as_slice)
                .unwrap_or(std::slice::from_ref(list))
            {
                for (model, targets) in item.as_mapping().into_iter().flatten() {
                    if let Some(model) = scalar(model) {
                        pairs.push((model, strings(targets)));
                    }
                }
            }
        }
        if let Some(default) = settings.get("default_fallbacks") {
            let targets = strings(default);
            let ids: Vec<String> = self.models.iter().map(|m| m.id.clone()).collect();
            for id in ids {
                if self.fallbacks.get(&id).is_none() && !pairs.iter().any(|(m, _)| *m == id) {
                    pairs.push((id, targets.clone()));
                }
            }
        }
        for (model, targets) in pairs {
            let Some(mode) = self.mode_of(&model) else {
                self.note(format!(
                    "fallbacks of `{model}`: not a model that was imported; dropped"
                ));
                continue;
            };
            let mut kept = Vec::new();
            for target in targets {
                if target == model {
                    // A model never falls back to itself (`default_fallbacks`
                    // names it too): LiteLLM skips it as well.
                    continue;
                }
                if self.mode_of(&target) == Some(mode) {
                    kept.push(target);
                } else {
                    self.note(format!(
                        "fallback `{target}` of `{model}`: not an imported model of the same mode; dropped"
                    ));
                }
            }
            if !kept.is_empty() && self.fallbacks.get(&model).is_none() {
                self.fallbacks.0.push((model, kept));
            }
        }
        for key in ["context_window_fallbacks", "content_policy_fallbacks"] {
            if settings.get(key).is_some() {
                self.note(format!(
                    "`{key}`: not mapped; Tollgate skips a candidate too small for the prompt, and its fallbacks apply to every retryable error"
                ));
            }
        }
    }

    fn router_settings(&mut self, router: &Mapping, strategy: &str) {
        self.retry_settings(router);
        match strategy {
            "simple-shuffle" => {}
            "latency-based-routing" | "least-busy" => self.note(format!(
                "routing_strategy `{strategy}`: approximated; Tollgate picks among a model's weighted deployments by the power of two choices on latency and calls in flight"
            )),
            other => self.note(format!(
                "routing_strategy `{other}`: not mapped; Tollgate picks among weighted deployments by the power of two choices on latency"
            )),
        }
        if let Some(aliases) = router.get("model_group_alias").and_then(Value::as_mapping) {
            for (alias, target) in aliases {
                let (Some(alias), Some(target)) = (
                    scalar(alias),
                    scalar(target).or_else(|| target.get("model").and_then(scalar)),
                ) else {
                    continue;
                };
                match self.models.iter().find(|m| m.id == target).cloned() {
                    Some(mut model) if self.mode_of(&alias).is_none() => {
                        model.id = alias;
                        if model.upstream.is_none() && model.provider.is_some() {
                            model.upstream = Some(target);
                        }
                        self.models.push(model);
                    }
                    _ => self.note(format!(
                        "model_group_alias `{alias}` → `{target}`: not an imported model, or the alias is taken; dropped"
                    )),
                }
            }
        }
        self.redis(router);
        for key in router.keys().filter_map(Value::as_str) {
            let handled = matches!(
                key,
                "routing_strategy"
                    | "model_group_alias"
                    | "fallbacks"
                    | "default_fallbacks"
                    | "context_window_fallbacks"
                    | "content_policy_fallbacks"
                    | "num_retries"
                    | "allowed_fails"
                    | "cooldown_time"
                    | "timeout"
                    | "request_timeout"
                    | "redis_host"
                    | "redis_port"
                    | "redis_password"
                    | "redis_url"
            );
            if !handled {
                self.note(format!("router_settings.{key}: not mapped"));
            }
        }
    }

    /// Retries, cooldowns and the timeout, from router or module settings.
    fn retry_settings(&mut self, settings: &Mapping) {
        if let Some(n) = int(settings.get("num_retries")) {
            self.setting("TOLLGATE_ROUTING_RETRIES", n.max(0).to_string());
        }
        if let Some(n) = int(settings.get("allowed_fails")) {
            self.setting("TOLLGATE_COOLDOWN_FAILURES", n.max(1).to_string());
        }
        if let Some(secs) = float(settings.get("cooldown_time")) {
            self.setting("TOLLGATE_COOLDOWN_MS", millis(secs).to_string());
        }
        let timeout = settings
            .get("timeout")
            .or_else(|| settings.get("request_timeout"));
        if let Some(secs) = float(timeout) {
            let whole = millis(secs).div_ceil(1000).max(1);
            self.setting("TOLLGATE_UPSTREAM_TIMEOUT_SECS", whole.to_string());
        }
    }

    fn redis(&mut self, settings: &Mapping) {
        let url = match (
            settings.get("redis_url").and_then(scalar),
            settings.get("redis_host").and_then(scalar),
        ) {
            (Some(url), _) if url.starts_with("os.environ/") => reference(&url),
            // A literal URL may hold a password.
            (Some(_), _) => {
                "redis://<host>:<port> (the redis_url of the LiteLLM config)".to_owned()
            }
            (None, Some(host)) => {
                let port = settings
                    .get("redis_port")
                    .and_then(scalar)
                    .map(|p| reference(&p))
                    .unwrap_or_else(|| "6379".to_owned());
                let password = match settings.get("redis_password").and_then(scalar) {
                    Some(p) if p.starts_with("os.environ/") => format!(":{}@", reference(&p)),
                    Some(_) => ":<password>@".to_owned(),
                    None => String::new(),
                };
                format!("redis://{password}{}:{port}", reference(&host))
            }
            (None, None) => return,
        };
        self.setting("REDIS_URL", url);
    }

    fn litellm_settings(&mut self, module: &Mapping) {
        self.retry_settings(module);
        if let Some(params) = module.get("cache_params").and_then(Value::as_mapping) {
            self.note(
                "litellm_settings.cache: response caching is not mapped; Redis is used for rate limits and cooldowns".to_owned(),
            );
            self.redis(params);
        }
        if module.get("set_verbose").and_then(Value::as_bool) == Some(true) {
            self.setting("RUST_LOG", "debug".to_owned());
        }
        for key in module.keys().filter_map(Value::as_str) {
            let hint = match key {
                "num_retries"
                | "allowed_fails"
                | "cooldown_time"
                | "request_timeout"
                | "timeout"
                | "fallbacks"
                | "default_fallbacks"
                | "context_window_fallbacks"
                | "content_policy_fallbacks"
                | "cache_params"
                | "set_verbose" => continue,
                "success_callback" | "failure_callback" | "callbacks" => {
                    " (Tollgate exports traces over OTLP and sends Standard Webhooks)"
                }
                "drop_params" => " (Tollgate passes parameters through)",
                "cache" => " (no response cache in Tollgate)",
                _ => "",
            };
            self.note(format!("litellm_settings.{key}: not mapped{hint}"));
        }
    }

    fn general_settings(&mut self, general: &Mapping) {
        for key in general.keys().filter_map(Value::as_str) {
            let note = match key {
                "master_key" => "general_settings.master_key: not written; Tollgate's admin token is TOLLGATE_ADMIN_TOKEN, and organizations get their own `tg-` keys".to_owned(),
                "database_url" => {
                    match general.get(key).and_then(scalar) {
                        Some(url) if url.starts_with("os.environ/") => {
                            self.setting("DATABASE_URL", reference(&url));
                            continue;
                        }
                        _ => "general_settings.database_url: not written (it may hold a password); set DATABASE_URL (a new database: Tollgate's schema is its own)".to_owned(),
                    }
                }
                "max_parallel_requests" | "global_max_parallel_requests" => {
                    format!("general_settings.{key}: not mapped; the nearest are TOLLGATE_ORG_MAX_CONCURRENCY and each key's max_concurrency")
                }
                _ => format!("general_settings.{key}: not mapped"),
            };
            self.note(note);
        }
    }

    fn finish(self) -> Result<Conversion, ImportError> {
        let config = Config {
            providers: self.providers,
            models: self.models,
            fallbacks: self.fallbacks,
            auto_detect: AutoDetect {
                enabled: self.wildcard,
            },
        };
        let body =
            serde_norway::to_string(&config).map_err(|e| ImportError::Invalid(e.to_string()))?;
        // What `tollgate serve` would do with it, every `${NAME}` set.
        tollgate_core::config::parse_catalog(&body, |_| Some("https://env.invalid".to_owned()))
            .map_err(|e| ImportError::Invalid(e.to_string()))?;
        let mut yaml = String::from(
            "# Tollgate configuration written by `tollgate import litellm` from a LiteLLM proxy config.\n\
             # `${NAME}` is read from the environment when `tollgate serve` starts.\n",
        );
        if !self.settings.is_empty() {
            yaml.push_str("# Settings of `tollgate serve` carried over from the router settings (environment):\n");
            for (name, value) in &self.settings {
                yaml.push_str(&format!("#   {name}={value}\n"));
            }
        }
        yaml.push_str(&body);
        Ok(Conversion {
            yaml,
            settings: self.settings,
            notes: self.notes,
        })
    }
}

/// How LiteLLM's provider prefix maps to a Tollgate provider.
#[derive(Clone, Copy)]
struct Route {
    kind: ProviderKind,
    /// Where the provider is without an `api_base`.
    default_base: Option<&'static str>,
    /// The variable LiteLLM reads the key from when none is given.
    key_env: Option<&'static str>,
    /// Added to `api_base`: Azure OpenAI's v1 API lives under `/openai/v1`
    /// of the resource, a Hugging Face TGI endpoint's OpenAI API under `/v1`.
    suffix: &'static str,
}

impl Route {
    fn of(prefix: &str) -> Option<Route> {
        let preset = |name: &str| tollgate_core::presets::find(name);
        let from_preset = |name: &str| {
            preset(name).map(|p| Route {
                kind: p.kind,
                default_base: Some(p.base_url),
                key_env: p.key_env,
                suffix: "",
            })
        };
        match prefix {
            "azure" => Some(Route {
                kind: ProviderKind::OpenAi,
                default_base: None,
                key_env: Some("AZURE_API_KEY"),
                suffix: "/openai/v1",
            }),
            // Only with an `api_base`: a (self-hosted) TGI endpoint.
            "huggingface" => Some(Route {
                kind: ProviderKind::OpenAi,
                default_base: None,
                key_env: None,
                suffix: "/v1",
            }),
            "together_ai" => from_preset("together"),
            "fireworks_ai" => from_preset("fireworks"),
            // LiteLLM's api_base is Ollama's root (its native API); its
            // OpenAI-compatible API, which Tollgate calls, is under `/v1`.
            "ollama" | "ollama_chat" => from_preset("ollama").map(|r| Route { suffix: "/v1", ..r }),
            "hosted_vllm" => from_preset("vllm"),
            "text-completion-openai" | "custom_openai" => from_preset("openai"),
            other => from_preset(other),
        }
    }

    fn base_url(&self, api_base: Option<&str>) -> Option<String> {
        let base = match api_base {
            Some(url)
                if url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("${") =>
            {
                url.trim_end_matches('/').to_owned()
            }
            Some(_) => return None,
            None if self.suffix == "/openai/v1" => "${AZURE_API_BASE}".to_owned(),
            None => self.default_base?.to_owned(),
        };
        if self.suffix.is_empty() || base.ends_with(self.suffix) {
            return Some(base);
        }
        Some(format!(
            "{}{}",
            base.trim_end_matches("/openai"),
            self.suffix
        ))
    }
}

/// LiteLLM's guess for a model name without a provider prefix.
fn infer_prefix(model: &str) -> &'static str {
    if model.starts_with("claude") {
        "anthropic"
    } else if model.starts_with("gemini") {
        // LiteLLM sends bare `gemini-*` names to Vertex AI.
        "vertex_ai"
    } else {
        "openai"
    }
}

/// A provider's base name: the prefix, or for a custom endpoint of an
/// OpenAI-compatible kind, the prefix and the endpoint's first host label.
fn base_name(prefix: &str, base_url: &str, route: Route) -> String {
    let prefix = match prefix {
        "together_ai" => "together",
        "fireworks_ai" => "fireworks",
        "ollama_chat" => "ollama",
        "hosted_vllm" => "vllm",
        "text-completion-openai" | "custom_openai" => "openai",
        other => other,
    };
    if route.default_base == Some(base_url) || base_url.starts_with("${") {
        return prefix.to_owned();
    }
    let authority = base_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
    let label: String = host
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    // An address or `localhost` says less than the port.
    let numeric = label.is_empty() || label.chars().all(|c| c.is_ascii_digit());
    if !numeric && label != "localhost" {
        format!("{prefix}-{label}")
    } else if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) {
        format!("{prefix}-{port}")
    } else {
        prefix.to_owned()
    }
}

/// `AZURE-EU_2` style names → `AZURE_EU_2`.
fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `os.environ/NAME` → `${NAME}`; anything else as it is.
fn reference(value: &str) -> String {
    match value.strip_prefix("os.environ/") {
        Some(name) => format!("${{{name}}}"),
        None => value.to_owned(),
    }
}

/// `url` without the `user:password@` of its authority, or `None` when it has none.
fn without_userinfo(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (_, host) = rest[..end].rsplit_once('@')?;
    Some(format!("{scheme}://{host}{}", &rest[end..]))
}

/// A scalar as text (`20_000` and `6` alike).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

fn float(value: Option<&Value>) -> Option<f64> {
    let text = scalar(value?)?;
    text.replace('_', "")
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f >= 0.0)
}

fn int(value: Option<&Value>) -> Option<i64> {
    // Bounded so that the cast below cannot wrap.
    float(value).filter(|f| *f <= 1e15).map(|f| {
        #[allow(clippy::cast_possible_truncation)]
        let n = f.round() as i64;
        n
    })
}

fn millis(secs: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = (secs.min(1e9) * 1000.0).round() as u64;
    ms
}

/// `rpm` / `tpm` of an entry: beside `litellm_params` or inside it.
fn number(entry: &Mapping, params: &Mapping, key: &str) -> Option<i64> {
    int(params.get(key).or_else(|| entry.get(key))).filter(|n| *n > 0)
}

/// How a group's deployments are weighed: `weight` when given, else (for
/// simple-shuffle, LiteLLM's default) by `rpm`, else by `tpm`, when every
/// deployment has one.
enum Weights {
    Explicit,
    Rpm,
    Tpm,
    Even,
}

impl Weights {
    fn of(group: &Group, strategy: &str) -> Weights {
        let all = |key: &str| {
            group.entries.iter().all(|(_, e)| {
                let params = e.get("litellm_params").and_then(Value::as_mapping);
                params.is_some_and(|p| number(e, p, key).is_some())
            })
        };
        let any_weight = group.entries.iter().any(|(_, e)| {
            e.get("litellm_params")
                .and_then(|p| p.get("weight"))
                .is_some()
        });
        if any_weight {
            Weights::Explicit
        } else if group.entries.len() < 2 || strategy != "simple-shuffle" {
            Weights::Even
        } else if all("rpm") {
            Weights::Rpm
        } else if all("tpm") {
            Weights::Tpm
        } else {
            Weights::Even
        }
    }

    fn of_entry(&self, entry: &Mapping, params: &Mapping) -> Option<i64> {
        match self {
            Weights::Explicit => int(params.get("weight")),
            Weights::Rpm => number(entry, params, "rpm"),
            Weights::Tpm => number(entry, params, "tpm"),
            Weights::Even => None,
        }
    }

    fn weight(&self, entry: &Mapping, params: &Mapping) -> u32 {
        let weight = self
            .of_entry(entry, params)
            .unwrap_or(1)
            .clamp(1, 1_000_000);
        u32::try_from(weight).unwrap_or(1)
    }
}

/// `model_info` (or `litellm_params`): prices, limits, mode, capabilities.
struct ModelInfo {
    mode: ModelMode,
    unsupported_mode: Option<String>,
    price: Option<Price>,
    context_window: Option<i64>,
    max_output_tokens: Option<i64>,
    supports_tools: Option<bool>,
    supports_vision: Option<bool>,
    base_model: Option<String>,
}

impl ModelInfo {
    fn of(entry: &Mapping, params: &Mapping) -> ModelInfo {
        let empty = Mapping::new();
        let info = entry
            .get("model_info")
            .and_then(Value::as_mapping)
            .unwrap_or(&empty);
        let get = |key: &str| info.get(key).or_else(|| params.get(key));
        let per_mtok = |key: &str| float(get(key)).map(|usd| (usd * 1e6 * 1e6).round() / 1e6);
        let price = match (
            per_mtok("input_cost_per_token"),
            per_mtok("output_cost_per_token"),
        ) {
            (None, None) => None,
            (input, output) => Some(Price {
                input_per_mtok: input.unwrap_or(0.0),
                output_per_mtok: output.unwrap_or(0.0),
                cached_input_per_mtok: per_mtok("cache_read_input_token_cost"),
            }),
        };
        let mode = info.get("mode").and_then(Value::as_str).unwrap_or("chat");
        let (mode, unsupported_mode) = match mode {
            "chat" | "completion" | "responses" => (ModelMode::Chat, None),
            "embedding" => (ModelMode::Embedding, None),
            other => (ModelMode::Chat, Some(other.to_owned())),
        };
        ModelInfo {
            mode,
            unsupported_mode,
            price,
            context_window: int(info.get("max_input_tokens")).filter(|n| *n > 0),
            max_output_tokens: int(info
                .get("max_output_tokens")
                .or_else(|| info.get("max_tokens")))
            .filter(|n| *n > 0),
            supports_tools: info
                .get("supports_function_calling")
                .and_then(Value::as_bool),
            supports_vision: info.get("supports_vision").and_then(Value::as_bool),
            base_model: info.get("base_model").and_then(scalar),
        }
    }
}

/// What Tollgate's built-in catalog knows of a model name.
struct Known {
    price: Price,
    tier: u8,
    quality: u8,
    context_window: i64,
    max_output_tokens: i64,
}

fn builtin(name: &str) -> Option<Known> {
    let catalog = tollgate_core::config::builtin_catalog(|_| None).ok()?;
    let m = catalog.model(name)?;
    // Micro-dollars per million tokens back to USD per million tokens.
    #[allow(clippy::cast_precision_loss)]
    let usd = |micros: tollgate_core::money::UsdMicros| micros.0 as f64 / 1e6;
    Some(Known {
        price: Price {
            input_per_mtok: usd(m.price.input_per_mtok),
            output_per_mtok: usd(m.price.output_per_mtok),
            cached_input_per_mtok: Some(usd(m.price.cached_input_per_mtok)),
        },
        tier: m.tier,
        quality: m.quality,
        context_window: m.context_window,
        max_output_tokens: m.max_output_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/litellm/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap()
    }

    fn catalog(conversion: &Conversion) -> tollgate_core::catalog::Catalog {
        tollgate_core::config::parse_catalog(&conversion.yaml, |_| Some("https://x.test".into()))
            .unwrap()
    }

    #[test]
    fn entries_of_one_model_name_become_deployments_weighted_by_rpm() {
        let conversion = convert(&fixture("configs-load-balancing.yaml")).unwrap();
        let catalog = catalog(&conversion);
        let zephyr = catalog.model("zephyr-beta").unwrap();
        let spread: Vec<(&str, &str, u32, Option<i64>)> = zephyr
            .deployments
            .iter()
            .map(|d| {
                (
                    d.entry.provider.as_str(),
                    d.entry.upstream.as_str(),
                    d.weight,
                    d.rpm,
                )
            })
            .collect();
        assert_eq!(
            spread,
            [
                (
                    "huggingface-8001",
                    "HuggingFaceH4/zephyr-7b-beta",
                    60,
                    Some(60)
                ),
                (
                    "huggingface-8002",
                    "HuggingFaceH4/zephyr-7b-beta",
                    600,
                    Some(600)
                ),
                (
                    "huggingface-8003",
                    "HuggingFaceH4/zephyr-7b-beta",
                    60_000,
                    Some(60_000)
                ),
            ]
        );
        assert_eq!(
            catalog.provider("huggingface-8001").unwrap().base_url,
            "http://0.0.0.0:8001/v1"
        );
        assert_eq!(catalog.fallbacks("zephyr-beta"), ["gpt-4o".to_owned()]);
        // model_group_alias: gpt-4 is served like gpt-4o.
        assert_eq!(catalog.model("gpt-4").unwrap().upstream, "gpt-4o");
    }

    #[test]
    fn router_settings_become_settings_and_the_rest_is_named() {
        let conversion = convert(&fixture("configs-load-balancing.yaml")).unwrap();
        let settings: Vec<(&str, &str)> = conversion
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert!(
            settings.contains(&("TOLLGATE_ROUTING_RETRIES", "2")),
            "{settings:?}"
        );
        assert!(
            settings.contains(&("TOLLGATE_COOLDOWN_FAILURES", "3")),
            "{settings:?}"
        );
        assert!(
            settings.contains(&("TOLLGATE_UPSTREAM_TIMEOUT_SECS", "30")),
            "{settings:?}"
        );
        assert!(conversion.yaml.contains("#   TOLLGATE_ROUTING_RETRIES=2"));
        let notes = conversion.notes.join("\n");
        assert!(notes.contains("context_window_fallbacks"), "{notes}");
        // The Redis password is a literal: named, never written.
        let redis = &conversion
            .settings
            .iter()
            .find(|(k, _)| k == "REDIS_URL")
            .unwrap()
            .1;
        assert!(!redis.contains("your redis password"), "{redis}");
    }

    #[test]
    fn literal_keys_are_never_written_and_each_gets_a_variable_of_its_own() {
        let conversion = convert(&fixture("example-load-balancer.yaml")).unwrap();
        for secret in ["sk-uj6F", "sk-Imn", "eYVX71"] {
            assert!(!conversion.yaml.contains(secret), "{secret} in the output");
            assert!(
                !conversion.notes.concat().contains(secret),
                "{secret} in a note"
            );
        }
        let catalog = catalog(&conversion);
        let providers: Vec<&str> = catalog
            .model("gpt-3.5-turbo")
            .unwrap()
            .deployments
            .iter()
            .map(|d| d.entry.provider.as_str())
            .collect();
        assert_eq!(providers, ["openai", "openai-2", "openrouter"]);
        assert!(conversion.yaml.contains("${OPENAI_2_API_KEY}"));
        assert!(conversion.yaml.contains("${OPENROUTER_API_KEY}"));
        let notes = conversion.notes.join("\n");
        assert!(notes.contains("export OPENAI_2_API_KEY"), "{notes}");
        assert!(notes.contains("provider `mistralai`"), "{notes}");
    }

    #[test]
    fn environment_references_stay_references_and_azure_uses_its_v1_api() {
        let conversion = convert(&fixture("example-azure-config.yaml")).unwrap();
        assert!(!conversion.yaml.contains("os.environ"));
        assert!(conversion.yaml.contains("${AZURE_API_KEY}"));
        let catalog = catalog(&conversion);
        let team1 = catalog.model("gpt-4-team1").unwrap();
        assert_eq!(team1.deployments[0].tpm, Some(20_000));
        assert_eq!(team1.upstream, "chatgpt-v-2");
        assert_eq!(
            catalog.provider(&team1.provider).unwrap().base_url,
            "https://openai-gpt-4-test-v-1.openai.azure.com/openai/v1"
        );
        let notes = conversion.notes.join("\n");
        assert!(notes.contains("litellm_params.stream_timeout"), "{notes}");
    }

    #[test]
    fn model_info_prices_win_over_the_built_in_catalog() {
        let text = r#"
model_list:
  - model_name: my-model
    litellm_params: { model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY }
    model_info: { input_cost_per_token: 0.000002, output_cost_per_token: 0.000008, max_input_tokens: 64000 }
  - model_name: known
    litellm_params: { model: gpt-4o-mini }
"#;
        let conversion = convert(text).unwrap();
        let catalog = catalog(&conversion);
        let mine = catalog.model("my-model").unwrap();
        assert_eq!(mine.price.input_per_mtok.0, 2_000_000);
        assert_eq!(mine.price.output_per_mtok.0, 8_000_000);
        assert_eq!(mine.context_window, 64_000);
        let known = catalog.model("known").unwrap();
        let builtin = tollgate_core::config::builtin_catalog(|_| None).unwrap();
        assert_eq!(known.price, builtin.model("gpt-4o-mini").unwrap().price);
    }

    #[test]
    fn credentials_in_an_api_base_are_never_written() {
        let text = r#"
model_list:
  - model_name: proxied
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: https://user:s3cret-pw@proxy.example.com/v1
      api_key: os.environ/PROXY_KEY
  - model_name: team
    litellm_params:
      model: azure/gpt-4
      api_base: https://u:an0ther-pw@team.openai.azure.com/
      api_version: "2024-02-01"
"#;
        let conversion = convert(text).unwrap();
        let notes = conversion.notes.join("\n");
        for secret in ["s3cret-pw", "an0ther-pw"] {
            assert!(!conversion.yaml.contains(secret), "{}", conversion.yaml);
            assert!(!notes.contains(secret), "{notes}");
        }
        let catalog = catalog(&conversion);
        let proxied = catalog.model("proxied").unwrap();
        assert_eq!(
            catalog.provider(&proxied.provider).unwrap().base_url,
            "https://proxy.example.com/v1"
        );
        assert!(notes.contains("holds credentials"), "{notes}");
    }

    #[test]
    fn api_key_none_is_an_endpoint_without_a_key() {
        let conversion = convert(&fixture("configs-quick-start.yaml")).unwrap();
        let catalog = catalog(&conversion);
        let vllm = catalog.model("vllm-models").unwrap();
        let provider = catalog.provider(&vllm.provider).unwrap();
        assert_eq!(provider.base_url, "http://0.0.0.0:4000/v1");
        assert!(provider.keyless, "{}", conversion.yaml);
        let notes = conversion.notes.join("\n");
        assert!(!notes.contains("vllm-models`): api_key"), "{notes}");
    }

    #[test]
    fn ollama_is_called_on_its_openai_compatible_api() {
        let text = r#"
model_list:
  - model_name: llama
    litellm_params: { model: ollama/llama3, api_base: "http://gpu-box:11434" }
  - model_name: llama-chat
    litellm_params: { model: ollama_chat/llama3 }
"#;
        let conversion = convert(text).unwrap();
        let catalog = catalog(&conversion);
        let base = |id: &str| {
            let model = catalog.model(id).unwrap();
            catalog.provider(&model.provider).unwrap().base_url.clone()
        };
        assert_eq!(base("llama"), "http://gpu-box:11434/v1");
        assert_eq!(base("llama-chat"), "http://localhost:11434/v1");
    }

    #[test]
    fn default_fallbacks_never_point_a_model_at_itself() {
        let text = r#"
model_list:
  - model_name: a
    litellm_params: { model: openai/gpt-4o, api_key: os.environ/OPENAI_API_KEY }
  - model_name: b
    litellm_params: { model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY }
litellm_settings:
  default_fallbacks: ["a"]
"#;
        let conversion = convert(text).unwrap();
        let catalog = catalog(&conversion);
        assert_eq!(catalog.fallbacks("b"), ["a".to_owned()]);
        assert!(catalog.fallbacks("a").is_empty());
        let notes = conversion.notes.join("\n");
        assert!(!notes.contains("fallback `a` of `a`"), "{notes}");
    }

    #[test]
    fn a_config_without_usable_models_is_an_error() {
        assert!(matches!(
            convert("model_list: []"),
            Err(ImportError::NoModels(_))
        ));
        assert!(matches!(
            convert("general_settings: {}"),
            Err(ImportError::NoModels(_))
        ));
        assert!(matches!(convert(": ["), Err(ImportError::Yaml(_))));
    }
}
