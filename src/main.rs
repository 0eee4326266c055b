//! The edgeprom binary: parses flags and runs the server.

fn main() {}
