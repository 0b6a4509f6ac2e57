//! `toolwarden classify`: captured tool lists in, classifications with evidence out.
