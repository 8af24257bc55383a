//! The sandbox: everything dealflow needs, running on this machine with no tenant and
//! no API key. For now the demo pipeline data; the emulators join it.

pub mod demo;
