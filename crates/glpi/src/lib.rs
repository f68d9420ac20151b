//! glpi
