//! Receiver configuration: `receivers:` entries in `lookout.yaml`, in
//! Alertmanager's shape with Lookout's chat and Zabbix kinds added.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
}
