//! Receiver configuration: `receivers:` entries in `lookout.yaml`, in
//! Alertmanager's shape with Lookout's chat and Zabbix kinds added.
//!
//! ```yaml
//! receivers:
//!   - name: ops
//!     webhook_configs:
//!       - url_file: /etc/lookout/ops-webhook-url
//!         max_alerts: 20
//!         http_config: {authorization: {credentials_env: OPS_TOKEN}}
//!     dingtalk_configs:
//!       - webhook_url_env: DINGTALK_URL
//!         secret_file: /etc/lookout/dingtalk-secret
//!         language: zh
//!     zabbix_configs:
//!       - server: zabbix.example.com      # port 10051 by default
//!         host_label: node
//!         host: kubernetes                # when the alert has no `node`
//!         key: lookout.alert
//! ```
//!
//! Every secret (URLs that carry a token, signing secrets, keys, bot
//! tokens) may be given inline, as `<field>_file` (read at start, trimmed)
//! or as `<field>_env` (an environment variable), exactly one of the three.
//! [`Secret`] never prints its value, and URLs are only ever logged as
//! scheme and host.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(120);
pub const DEFAULT_ZABBIX_PORT: u16 = 10051;
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";
pub const DEFAULT_WECOM_API_URL: &str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<WebhookConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slack_configs: Vec<SlackConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dingtalk_configs: Vec<DingTalkConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub feishu_configs: Vec<FeishuConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wecom_configs: Vec<WeComConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub telegram_configs: Vec<TelegramConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teams_configs: Vec<TeamsConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub zabbix_configs: Vec<ZabbixConfig>,
}

impl ReceiverConfig {
    /// Checks every integration: secrets present and readable, URLs
    /// well-formed, templates parse, required fields set. `path` is where
    /// this receiver sits in the file, e.g. `notify.receivers[2]`; each
    /// problem names the field below it, e.g.
    /// `notify.receivers[2].dingtalk_configs[0].secret_file: cannot read /x: ...`.
    pub fn validate(&self, path: &str) -> Vec<ReceiverProblem> {
        let funcs = super::message::TemplateFuncs::default();
        let mut problems = Problems::new(path);
        super::delivery::resolve_all(self, &funcs, &mut problems);
        problems.into_vec()
    }

    /// How many integrations the receiver has, all kinds together.
    pub fn integration_count(&self) -> usize {
        self.webhook_configs.len()
            + self.slack_configs.len()
            + self.dingtalk_configs.len()
            + self.feishu_configs.len()
            + self.wecom_configs.len()
            + self.telegram_configs.len()
            + self.teams_configs.len()
            + self.zabbix_configs.len()
    }
}

/// One problem in a receiver's config, with the path of the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ReceiverProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects problems under a path prefix.
pub(crate) struct Problems {
    prefix: String,
    list: Vec<ReceiverProblem>,
}

impl Problems {
    pub(crate) fn new(prefix: &str) -> Problems {
        Problems {
            prefix: prefix.to_string(),
            list: Vec::new(),
        }
    }

    /// `field` is relative to the prefix, e.g. `slack_configs[0].api_url`.
    pub(crate) fn push(&mut self, field: &str, message: impl Into<String>) {
        let path = if self.prefix.is_empty() {
            field.to_string()
        } else if field.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}.{field}", self.prefix)
        };
        self.list.push(ReceiverProblem {
            path,
            message: message.into(),
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn into_vec(self) -> Vec<ReceiverProblem> {
        self.list
    }
}

/// A value that must not be printed: Debug, Display and Serialize show
/// `<secret>`. Compare with `==`; read with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for Secret {
    // Alertmanager does the same: a config dumped for display or a bug
    // report carries no credentials.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Language of the default message templates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    #[serde(alias = "zh-cn", alias = "zh_CN", alias = "zh-CN", alias = "cn")]
    Zh,
}

/// `rate_limit:` of an integration; replaces the kind's default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Messages per minute to one endpoint; 0 turns limiting off.
    pub per_minute: u32,
    /// How many may go out back to back before the rate applies. The
    /// default 1 spaces messages evenly, the only setting that keeps any
    /// 60-second window at or under `per_minute`.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_minute: 0,
            burst: 1,
        }
    }
}

/// The `authorization:` block of `http_config`, as in Prometheus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// The scheme, `Bearer` unless set.
    #[serde(rename = "type")]
    pub kind: String,
    pub credentials: Option<Secret>,
    pub credentials_file: Option<PathBuf>,
    pub credentials_env: Option<String>,
}

impl Default for AuthorizationConfig {
    fn default() -> Self {
        AuthorizationConfig {
            kind: "Bearer".to_string(),
            credentials: None,
            credentials_file: None,
            credentials_env: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
}

/// The part of Prometheus's `http_config` that webhooks use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub authorization: Option<AuthorizationConfig>,
    pub basic_auth: Option<BasicAuthConfig>,
}

fn yes() -> bool {
    true
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_give_up_after() -> Duration {
    DEFAULT_GIVE_UP_AFTER
}

// Every kind repeats the same delivery fields rather than flattening a
// shared struct: serde's `flatten` cannot be combined with
// `deny_unknown_fields`, and a misspelt key must stay an error.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    pub url: Option<Secret>,
    pub url_file: Option<PathBuf>,
    pub url_env: Option<String>,
    #[serde(default)]
    pub http_config: HttpConfig,
    /// At most this many alerts per message, the rest counted in
    /// `truncatedAlerts`; 0 sends all.
    #[serde(default)]
    pub max_alerts: u64,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    pub rate_limit: Option<RateLimitConfig>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            send_resolved: true,
            url: None,
            url_file: None,
            url_env: None,
            http_config: HttpConfig::default(),
            max_alerts: 0,
            timeout: DEFAULT_TIMEOUT,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            rate_limit: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// The incoming-webhook URL (`https://hooks.slack.com/services/...`).
    pub api_url: Option<Secret>,
    pub api_url_file: Option<PathBuf>,
    pub api_url_env: Option<String>,
    /// Only honoured by legacy webhooks; app webhooks post to their own channel.
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub title: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub language: Language,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    pub rate_limit: Option<RateLimitConfig>,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            send_resolved: true,
            api_url: None,
            api_url_file: None,
            api_url_env: None,
            channel: None,
            username: None,
            icon_emoji: None,
            icon_url: None,
            title: None,
            text: None,
            language: Language::En,
            timeout: DEFAULT_TIMEOUT,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            rate_limit: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingTalkConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// `https://oapi.dingtalk.com/robot/send?access_token=...`
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<PathBuf>,
    pub webhook_url_env: Option<String>,
    /// The robot's signing secret (`SEC...`), when it uses 加签.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    /// Mobile numbers to @; each is also appended to the text, which
    /// DingTalk requires for the mention to show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_mobiles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_user_ids: Vec<String>,
    #[serde(default)]
    pub at_all: bool,
    pub title: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub language: Language,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    pub rate_limit: Option<RateLimitConfig>,
}

impl Default for DingTalkConfig {
    fn default() -> Self {
        DingTalkConfig {
            send_resolved: true,
            webhook_url: None,
            webhook_url_file: None,
            webhook_url_env: None,
            secret: None,
            secret_file: None,
            secret_env: None,
            at_mobiles: Vec::new(),
            at_user_ids: Vec::new(),
            at_all: false,
            title: None,
            text: None,
            language: Language::En,
            timeout: DEFAULT_TIMEOUT,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            rate_limit: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// `https://open.feishu.cn/open-apis/bot/v2/hook/<id>` (or Lark's
    /// `open.larksuite.com`).
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<PathBuf>,
    pub webhook_url_env: Option<String>,
    /// The bot's signature secret (签名校验), when set.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    pub title: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub language: Language,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    pub rate_limit: Option<RateLimitConfig>,
}

impl Default for FeishuConfig {
    fn default() -> Self {
        FeishuConfig {
            send_resolved: true,
            webhook_url: None,
            webhook_url_file: None,
            webhook_url_env: None,
            secret: None,
            secret_file: None,
            secret_env: None,
            title: None,
            text: None,
            language: Language::En,
            timeout: DEFAULT_TIMEOUT,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            rate_limit: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeComConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// The whole webhook URL with its `key=`; or give `key` alone.
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<PathBuf>,
    pub webhook_url_env: Option<String>,
    pub key: Option<Secret>,
    pub key_file: Option<PathBuf>,
    pub key_env: Option<String>,
    /// Where `key` is sent; WeCom's own endpoint unless set.
    pub api_url: Option<String>,
    pub title: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub language: Language,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    pub rate_limit: Option<RateLimitConfig>,
}

impl Default for WeComConfig {
    fn default() -> Self {
        WeComConfig {
            send_resolved: true,
            webhook_url: None,
            webhook_url_file: None,
            webhook_url_env: None,
            key: None,
            key_file: None,
            key_env: None,
            api_url: None,
            title: None,
            text: None,
            language: Language::En,
            timeout: DEFAULT_TIMEOUT,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            rate_limit: None,
        }
    }
}

/// A Telegram chat: a number (groups are negative) or `@channelname`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    Id(i64),
    Name(String),
}

impl Default for ChatId {
    fn default() -> Self {
        ChatId::Id(0)
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatId::Id(id) => write!(f, "{id}"),
            ChatId::Name(name) => f.write_str(name),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// The Bot API base, `https://api.telegram.org` unless set.
    pub api_url: Option<String>,
    pub bot_token: Option<Secret>,
    pub bot_token_file: Option<PathBuf>,
    pub bot_token_env: Option<String>,
    #[serde(default)]
    pub chat_id: ChatId,
    /// A forum topic of the chat.
    pub message_thread_id: Option<i64>,
    /// Deliver silently.
    #[serde(default)]
    pub disable_notifications: bool,
    /// The whole message, HTML (Telegram's `parse_mode: HTML`): escape
    /// values with `html` in a custom template.
    pub message: Option<String>,
    #[serde(default)]
    pub language: Language,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    pub rate_limit: Option<RateLimitConfig>,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            send_resolved: true,
            api_url: None,
            bot_token: None,
            bot_token_file: None,
            bot_token_env: None,
            chat_id: ChatId::default(),
            message_thread_id: None,
            disable_notifications: false,
            message: None,
            language: Language::En,
            timeout: DEFAULT_TIMEOUT,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            rate_limit: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// A Power Automate "Workflows" webhook URL.
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<PathBuf>,
    pub webhook_url_env: Option<String>,
    pub title: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub language: Language,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    pub rate_limit: Option<RateLimitConfig>,
}

impl Default for TeamsConfig {
    fn default() -> Self {
        TeamsConfig {
            send_resolved: true,
            webhook_url: None,
            webhook_url_file: None,
            webhook_url_env: None,
            title: None,
            text: None,
            language: Language::En,
            timeout: DEFAULT_TIMEOUT,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            rate_limit: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZabbixConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// The Zabbix server or proxy, `host[:port]` (port 10051 unless set).
    pub server: String,
    /// The Zabbix host the trapper item belongs to, or the fallback when
    /// `host_label` is set and an alert lacks that label.
    pub host: Option<String>,
    /// Take the Zabbix host name from this alert label (e.g. `node`).
    pub host_label: Option<String>,
    /// Key of the trapper item.
    pub key: String,
    /// Go template for the value, over one alert (its `.Status`,
    /// `.Labels`, `.Annotations`, ... plus `.Receiver`, `.ExternalURL`,
    /// `.GroupLabels`, `.CommonLabels`, `.CommonAnnotations`).
    pub value: Option<String>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    pub rate_limit: Option<RateLimitConfig>,
}

impl Default for ZabbixConfig {
    fn default() -> Self {
        ZabbixConfig {
            send_resolved: true,
            server: String::new(),
            host: None,
            host_label: None,
            key: String::new(),
            value: None,
            timeout: DEFAULT_TIMEOUT,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            rate_limit: None,
        }
    }
}

/// Resolves one secret given inline, as a file or as an environment
/// variable; exactly one may be set. `field` is the path of the inline
/// field, e.g. `dingtalk_configs[0].secret`; the variants are named
/// `<field>_file` and `<field>_env`. Returns `None` (after recording a
/// problem when `required`) if none is set or it cannot be read.
pub(crate) fn resolve_secret(
    problems: &mut Problems,
    field: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
    env: &Option<String>,
    required: bool,
) -> Option<Secret> {
    let set =
        usize::from(inline.is_some()) + usize::from(file.is_some()) + usize::from(env.is_some());
    let name = field.rsplit('.').next().unwrap_or(field);
    if set > 1 {
        problems.push(
            field,
            format!("set only one of {name}, {name}_file and {name}_env"),
        );
        return None;
    }
    let value = if let Some(secret) = inline {
        secret.clone()
    } else if let Some(path) = file {
        match std::fs::read_to_string(path) {
            // Files written by editors and `echo` end in a newline that
            // is not part of the secret.
            Ok(text) => Secret::new(text.trim()),
            Err(err) => {
                problems.push(
                    &format!("{field}_file"),
                    format!("cannot read {}: {err}", path.display()),
                );
                return None;
            }
        }
    } else if let Some(var) = env {
        match std::env::var(var) {
            Ok(text) => Secret::new(text.trim()),
            Err(std::env::VarError::NotPresent) => {
                problems.push(
                    &format!("{field}_env"),
                    format!("environment variable {var} is not set"),
                );
                return None;
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                problems.push(
                    &format!("{field}_env"),
                    format!("environment variable {var} is not UTF-8"),
                );
                return None;
            }
        }
    } else {
        if required {
            problems.push(
                field,
                format!("required: set {name}, {name}_file or {name}_env"),
            );
        }
        return None;
    };
    if value.is_empty() {
        problems.push(field, "is empty");
        return None;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "<secret>");
        assert_eq!(format!("{s:?}"), "<secret>");
        assert_eq!(
            serde_json::to_string(&s).ok().as_deref(),
            Some("\"<secret>\"")
        );
        assert_eq!(s.expose(), "hunter2");
        let cfg = DingTalkConfig {
            secret: Some(s),
            ..DingTalkConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn defaults_apply_when_fields_are_missing() {
        let cfg: ReceiverConfig = serde_json::from_str(
            r#"{"name":"ops","webhook_configs":[{"url":"http://x/"}],"slack_configs":[{}]}"#,
        )
        .expect("parses");
        let w = &cfg.webhook_configs[0];
        assert!(w.send_resolved);
        assert_eq!(w.timeout, DEFAULT_TIMEOUT);
        assert_eq!(w.give_up_after, DEFAULT_GIVE_UP_AFTER);
        assert_eq!(w.max_alerts, 0);
        assert_eq!(cfg.slack_configs[0].language, Language::En);
        assert_eq!(cfg.integration_count(), 2);
        let bad = serde_json::from_str::<ReceiverConfig>(
            r#"{"name":"x","slack_configs":[{"api_ur":"x"}]}"#,
        );
        assert!(bad.is_err());
    }

    #[test]
    fn one_source_per_secret() {
        let mut p = Problems::new("notify.receivers[0]");
        let got = resolve_secret(
            &mut p,
            "dingtalk_configs[0].secret",
            &Some(Secret::new("a")),
            &None,
            &Some("X".into()),
            false,
        );
        assert!(got.is_none());
        let v = p.into_vec();
        assert_eq!(
            v[0].to_string(),
            "notify.receivers[0].dingtalk_configs[0].secret: set only one of secret, secret_file and secret_env"
        );
    }
}
