//! The typed inventory of one server, as discovery returns it and as the
//! NetBox and state stages consume it. `None` and empty lists mean the BMC
//! did not say (or said a placeholder); nothing here is guessed.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// The vendor module that read this BMC: dell, hpe, lenovo, supermicro,
    /// or generic.
    pub vendor: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// The server's serial as the vendor means it, the one to register:
    /// Dell's service tag, everyone else's SerialNumber.
    pub serial_number: Option<String>,
    /// Dell only: the 7-character service tag (also in `serial_number`).
    pub service_tag: Option<String>,
    /// The motherboard / PPID serial where the vendor reports it apart.
    pub board_serial: Option<String>,
    /// The orderable product number (HPE `P38411-B21`, Lenovo `7Z23CTO1WW`).
    pub sku: Option<String>,
    pub part_number: Option<String>,
    pub asset_tag: Option<String>,
    pub uuid: Option<String>,
    pub bios_version: Option<String>,
    pub power_state: Option<String>,
    /// Health rollup as the BMC reports it (OK, Warning, Critical).
    pub health: Option<String>,
    /// The host OS's name as the BMC knows it.
    pub host_name: Option<String>,
    /// Height in rack units when the BMC says it.
    pub height_u: Option<u32>,
    pub bmc: Bmc,
    pub cpus: Vec<Cpu>,
    pub memory_gib: Option<f64>,
    pub dimms: Vec<Dimm>,
    pub storage_controllers: Vec<StorageController>,
    pub drives: Vec<Drive>,
    /// Storage enclosures / backplanes.
    pub enclosures: Vec<String>,
    pub nics: Vec<Nic>,
    pub network_adapters: Vec<NetworkAdapter>,
    /// The server's own network ports (never the BMC's), one per physical
    /// port, sorted by name, names unique; see `redfish/ports.rs` for
    /// where each field comes from. At most `ports::MAX_HOST_PORTS`.
    #[serde(default)]
    pub host_ports: Vec<HostPort>,
    pub power_supplies: Vec<PowerSupply>,
    pub firmware: Vec<Firmware>,
    pub location: Option<Location>,
    /// The vendor's event log (Dell SEL, HPE IML), summarised.
    pub event_log: Option<EventLog>,
    /// Dell lifecycle controller status, when the iDRAC reports it.
    pub lifecycle_controller: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bmc {
    /// iDRAC9 15G Monolithic, iLO 5, Lenovo XClarity Controller, ...
    pub model: Option<String>,
    pub firmware_version: Option<String>,
    pub mac: Option<String>,
    pub hostname: Option<String>,
    pub fqdn: Option<String>,
    pub ipv4: Vec<String>,
    pub uuid: Option<String>,
    /// The Redfish version the service root reports.
    pub redfish_version: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub socket: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub cores: Option<u64>,
    pub threads: Option<u64>,
    pub max_speed_mhz: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dimm {
    pub slot: Option<String>,
    pub capacity_mib: Option<u64>,
    pub manufacturer: Option<String>,
    pub part_number: Option<String>,
    pub serial_number: Option<String>,
    pub speed_mhz: Option<u64>,
    pub memory_type: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageController {
    pub name: Option<String>,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    pub serial_number: Option<String>,
    pub firmware_version: Option<String>,
    /// True for RAID-capable controllers (PERC, Smart Array, MegaRAID).
    pub raid: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Drive {
    pub name: Option<String>,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    pub serial_number: Option<String>,
    pub capacity_bytes: Option<u64>,
    /// HDD, SSD.
    pub media_type: Option<String>,
    /// SATA, SAS, NVMe.
    pub protocol: Option<String>,
    pub firmware_version: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Nic {
    pub name: Option<String>,
    pub mac: Option<String>,
    pub speed_mbps: Option<u64>,
    pub link_status: Option<String>,
}

/// One network port of the host (not of the BMC), as Redfish reports it
/// through the chassis' NetworkAdapters, the system's EthernetInterfaces
/// or a vendor's OEM view (HPE BaseNetworkAdapters), merged by MAC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostPort {
    /// The vendor's name for the port: Dell `NIC.Slot.5-1`, HPE iLO 5
    /// `NIC.Slot.1.1-2` (adapter + port), else adapter id + port label.
    /// Unique within the inventory, at most `ports::MAX_NAME` characters.
    pub name: String,
    /// Burned-in MAC, canonical (`aa:bb:cc:dd:ee:ff`); None for ports
    /// that have none (Fibre Channel, some InfiniBand).
    pub mac: Option<String>,
    /// Negotiated speed, when the link is up and the BMC says.
    pub speed_mbps: Option<u64>,
    /// Fastest speed the port supports, when the BMC says.
    pub max_speed_mbps: Option<u64>,
    /// Ethernet, InfiniBand, FibreChannel (Redfish LinkNetworkTechnology).
    pub technology: Option<String>,
    /// Electrical or Optical (Redfish PortMedium).
    pub medium: Option<String>,
    pub link_up: Option<bool>,
    pub enabled: Option<bool>,
    /// The BMC reports the port's function set to boot by PXE.
    pub pxe: bool,
    /// The switch port at the other end, when the port heard one.
    pub lldp: Option<LldpNeighbor>,
    /// The adapter the port is on (model or name).
    pub adapter: Option<String>,
}

/// What a port learned from its LLDP neighbour. `port_id` is decoded by
/// its subtype: a name sent as hex octets (`31:2F:31:2F:31:3A:34`) reads
/// `1/1/1:4`; a MAC is canonical.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LldpNeighbor {
    pub chassis_id: Option<String>,
    pub chassis_id_subtype: Option<String>,
    pub port_id: Option<String>,
    pub port_id_subtype: Option<String>,
    pub system_name: Option<String>,
    pub system_description: Option<String>,
    pub management_ipv4: Option<String>,
    pub management_mac: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkAdapter {
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub part_number: Option<String>,
    pub firmware_version: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerSupply {
    pub name: Option<String>,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    pub serial_number: Option<String>,
    pub part_number: Option<String>,
    pub capacity_watts: Option<u64>,
    pub firmware_version: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Firmware {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// Where the chassis says it is (Redfish `Location`); rarely filled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub site: Option<String>,
    pub building: Option<String>,
    pub room: Option<String>,
    pub row: Option<String>,
    pub rack: Option<String>,
    /// Rack unit (Redfish `RackOffset`).
    pub rack_unit: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventLog {
    /// SEL, IML, ...
    pub source: String,
    /// Total entries, when the BMC counts them.
    pub entries: Option<u64>,
    /// Entries with Severity Critical among those read.
    pub critical: u64,
    /// The newest messages read (at most a handful).
    pub latest: Vec<String>,
}
