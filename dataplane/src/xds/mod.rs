//! (being written) The xDS client.
