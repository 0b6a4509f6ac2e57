pub(super) async fn serve(config: super::Config, addr: std::net::SocketAddr) -> Result<(), super::ProxyError> {
    let _ = (config, addr);
    Ok(())
}
