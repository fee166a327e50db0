//! Unit tests of the example server's flag parsing and HTML escaping (the
//! modules are compiled here as they are in the example).

#[allow(dead_code)]
#[path = "../examples/server/cli.rs"]
mod cli;

#[allow(dead_code)]
#[path = "../examples/server/html.rs"]
mod html;
