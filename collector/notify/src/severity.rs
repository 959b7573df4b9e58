//! Alert severity, read from the `severity` label. Zabbix's five levels
//! and Prometheus's customary names map onto one ordered scale, so
//! receivers (Zabbix, chat colours, paging) can compare them.

use std::fmt;
use std::str::FromStr;

use crate::alert::LabelSet;

/// Zabbix's scale, lowest first; the discriminant is Zabbix's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Severity {
    #[default]
    NotClassified = 0,
    Information = 1,
    Warning = 2,
    Average = 3,
    High = 4,
    Disaster = 5,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?}")]
pub struct UnknownSeverity(pub String);

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::NotClassified,
        Severity::Information,
        Severity::Warning,
        Severity::Average,
        Severity::High,
        Severity::Disaster,
    ];

    /// Reads a severity name, ignoring case and surrounding space.
    ///
    /// Zabbix names map to themselves. Prometheus's customary names map by
    /// what they ask of a person: `none` is not classified, `info` is
    /// information, `warning` waits for working hours, `error`/`major` sit
    /// between, and `critical`/`page` wake someone (Zabbix's High).
    /// Disaster is kept for alerts that say so (`disaster`, `fatal`,
    /// `emergency`). Zabbix's numbers 0 to 5 are accepted too.
    pub fn parse(s: &str) -> Option<Severity> {
        let s = s.trim().to_ascii_lowercase();
        Some(match s.as_str() {
            "" | "none" | "not classified" | "not_classified" | "notclassified" | "unknown"
            | "0" => Severity::NotClassified,
            "info" | "information" | "informational" | "notice" | "debug" | "ok" | "1" => {
                Severity::Information
            }
            "warning" | "warn" | "low" | "minor" | "2" => Severity::Warning,
            "average" | "error" | "err" | "major" | "medium" | "3" => Severity::Average,
            "high" | "critical" | "crit" | "page" | "alert" | "4" => Severity::High,
            "disaster" | "fatal" | "emergency" | "emerg" | "5" => Severity::Disaster,
            _ => return None,
        })
    }

    /// The severity of a label set's `severity` label; not classified when
    /// it is missing or unknown.
    pub fn from_labels(labels: &LabelSet) -> Severity {
        labels
            .get("severity")
            .and_then(|s| Severity::parse(s))
            .unwrap_or_default()
    }

    /// Zabbix's number for the level, 0 (not classified) to 5 (disaster).
    pub fn zabbix_level(self) -> u8 {
        self as u8
    }

    pub fn from_zabbix_level(level: u8) -> Option<Severity> {
        Severity::ALL.get(usize::from(level)).copied()
    }

    /// Zabbix's display name.
    pub fn zabbix_name(self) -> &'static str {
        match self {
            Severity::NotClassified => "Not classified",
            Severity::Information => "Information",
            Severity::Warning => "Warning",
            Severity::Average => "Average",
            Severity::High => "High",
            Severity::Disaster => "Disaster",
        }
    }

    /// The lower-case name used in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::NotClassified => "not classified",
            Severity::Information => "information",
            Severity::Warning => "warning",
            Severity::Average => "average",
            Severity::High => "high",
            Severity::Disaster => "disaster",
        }
    }
}

impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::parse(s).ok_or_else(|| UnknownSeverity(s.to_string()))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zabbix_levels() {
        let names = [
            "not classified",
            "information",
            "warning",
            "average",
            "high",
            "disaster",
        ];
        for (i, name) in names.iter().enumerate() {
            let s = Severity::parse(name).unwrap();
            assert_eq!(usize::from(s.zabbix_level()), i);
            assert_eq!(s.as_str(), *name);
            assert_eq!(Severity::from_zabbix_level(s.zabbix_level()), Some(s));
        }
        assert_eq!(Severity::from_zabbix_level(6), None);
        assert_eq!("Disaster".parse::<Severity>(), Ok(Severity::Disaster));
    }

    #[test]
    fn prometheus_names_and_order() {
        assert_eq!(Severity::parse("info"), Some(Severity::Information));
        assert_eq!(Severity::parse("WARNING"), Some(Severity::Warning));
        assert_eq!(Severity::parse("critical"), Some(Severity::High));
        assert_eq!(Severity::parse("page"), Some(Severity::High));
        assert_eq!(Severity::parse("none"), Some(Severity::NotClassified));
        assert_eq!(Severity::parse("bogus"), None);
        assert!("bogus".parse::<Severity>().is_err());
        assert!(Severity::Disaster > Severity::High);
        assert!(Severity::Warning > Severity::Information);
        let mut labels = LabelSet::new();
        assert_eq!(Severity::from_labels(&labels), Severity::NotClassified);
        labels.insert("severity".into(), " Critical ".into());
        assert_eq!(Severity::from_labels(&labels), Severity::High);
    }
}
