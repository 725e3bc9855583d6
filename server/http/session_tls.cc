// The TLS (asio::ssl over a tcp_stream) connection sessions: Session<true> is instantiated here only (session.h).
#include "server/http/session.h"

namespace vpcd::http::detail {

void start_tls_session(HttpServer::Impl& srv, std::string remote, std::string client, bool reserved,
                       tcp::socket socket) {
  auto s = std::make_shared<Session<true>>(srv, std::move(remote), std::move(client), reserved, std::move(socket),
                                           *srv.ssl_ctx);
  srv.add_session(s);
  s->run();
}

}  // namespace vpcd::http::detail
