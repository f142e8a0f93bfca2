//! Power and thermal watch: Raspberry Pi throttling, temperatures, batteries.
