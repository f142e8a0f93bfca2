//! Time sync: Pi clock from the phone (and GPS), camera clock from the Pi.
