//! Policies: the document format, validation, generation and the pure decision function.
