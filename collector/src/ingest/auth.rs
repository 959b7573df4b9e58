//! Bearer-token checks for pushes. Tokens come from files or environment
//! variables; comparison takes the same time whether the first or the last
//! byte differs, and every configured token is compared, so timing tells an
//! attacker nothing about which token nearly matched.

use anyhow::Context;

use crate::config::TokenConfig;

#[derive(Clone, Default)]
pub struct Tokens {
    tokens: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        let names: Vec<&str> = self.tokens.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

/// The outcome of checking a request's `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No tokens are configured: everyone may push.
    Open,
    /// The named token matched.
    Holder(String),
    Missing,
    Wrong,
}

impl Tokens {
    pub fn load(configs: &[TokenConfig]) -> anyhow::Result<Tokens> {
        let mut tokens = Vec::new();
        for t in configs {
            let secret = match (&t.file, &t.env) {
                (Some(path), _) => std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read token {:?} from {}", t.name, path.display())
                })?,
                (None, Some(var)) => std::env::var(var).with_context(|| {
                    format!("token {:?}: environment variable {var} is not set", t.name)
                })?,
                (None, None) => anyhow::bail!("token {:?} has neither file nor env", t.name),
            };
            let secret = secret.trim().as_bytes().to_vec();
            if secret.len() < 16 {
                anyhow::bail!(
                    "token {:?} is {} bytes; use at least 16 (for example `openssl rand -hex 32`)",
                    t.name,
                    secret.len()
                );
            }
            tokens.push((t.name.clone(), secret));
        }
        Ok(Tokens { tokens })
    }

    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn check(&self, authorization: Option<&[u8]>) -> Verdict {
        if self.tokens.is_empty() {
            return Verdict::Open;
        }
        let Some(given) = authorization.and_then(bearer) else {
            return Verdict::Missing;
        };
        let mut found = None;
        for (name, secret) in &self.tokens {
            if constant_time_eq(given, secret) && found.is_none() {
                found = Some(name.clone());
            }
        }
        found.map_or(Verdict::Wrong, Verdict::Holder)
    }
}

fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(rest.trim_ascii())
}

/// Compares without an early exit; only the length leaks, which a token's
/// fixed length makes worthless.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            tokens: vec![
                ("shared".into(), b"0123456789abcdef".to_vec()),
                ("node-1".into(), b"fedcba9876543210".to_vec()),
            ],
        }
    }

    #[test]
    fn verdicts() {
        let t = tokens();
        assert_eq!(t.check(None), Verdict::Missing);
        assert_eq!(t.check(Some(b"Basic abc")), Verdict::Missing);
        assert_eq!(t.check(Some(b"Bearer nope")), Verdict::Wrong);
        assert_eq!(t.check(Some(b"Bearer 0123456789abcdeF")), Verdict::Wrong);
        assert_eq!(
            t.check(Some(b"bearer fedcba9876543210")),
            Verdict::Holder("node-1".into())
        );
        assert_eq!(Tokens::default().check(None), Verdict::Open);
        assert!(!format!("{t:?}").contains("0123"));
    }

    #[test]
    fn short_tokens_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "short\n").unwrap();
        let e = Tokens::load(&[TokenConfig {
            name: "a".into(),
            file: Some(p),
            env: None,
        }])
        .unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
    }
}
