// The plain HTTP (loopback or tests) connection sessions: Session<false> is instantiated here only (session.h).
#include "server/http/session.h"

namespace vpcd::http::detail {

void start_plain_session(HttpServer::Impl& srv, std::string remote, std::string client, bool reserved,
                       tcp::socket socket) {
  auto s = std::make_shared<Session<false>>(srv, std::move(remote), std::move(client), reserved, std::move(socket));
  srv.add_session(s);
  s->run();
}

}  // namespace vpcd::http::detail
