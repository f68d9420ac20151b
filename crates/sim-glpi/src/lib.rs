//! sim-glpi
