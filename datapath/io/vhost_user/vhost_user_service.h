// VhostUserService: the thread that owns every vhost-user socket of one Controller and feeds each front-end's
// messages to its VhostUserPort.
//
// Modes (API.md backend `vhost-user`):
//   - client (default): the hypervisor listens on the socket; vpcd connects, and reconnects (every 200 ms after a
//     clean disconnect or while nobody listens, 1 s after a protocol error), so either side may restart: a restarted
//     vpcd finds the waiting front-end at its first attempt and traffic resumes with no API call.
//   - server: vpcd creates the socket (mode 0660, owner/group from the NIC, the parent directory must exist), accepts
//     one front-end at a time (a second connection is closed at once), and keeps listening after it leaves. A file
//     already at the path is replaced only when it is a socket this vpcd instance created (a marker under
//     <run_dir>/vhost-user records its device and inode) and nobody answers on it; anything else is an error: vpcd
//     never removes someone else's file. The socket and its marker are removed when the NIC goes away.
// Messages are read with a 1 s receive timeout (a front-end that stops inside a message is disconnected with an
// error); replies are written with a 1 s send timeout.
//
// Threading: attach()/detach() are called by the control thread; everything else runs on the service thread
// ("vpcd-vhost"), which handles events under mu_. detach() takes mu_, so once it returns the thread never touches
// that port again. Lock order: mu_, then the port's ctl_mu_, then its vring locks. Status listeners are called on the
// service thread with mu_ held: they must only signal (Controller: notify the reconciler).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "datapath/io/unique_fd.h"
#include "datapath/io/vhost_user/thread_annotations.h"
#include "datapath/io/vhost_user/vhost_user_port.h"

namespace vpcd::dp::vhost {

struct VhostUserEndpoint {
  std::string path;          // absolute socket path
  bool server = false;       // vpcd listens (else vpcd connects)
  std::optional<uid_t> owner;  // server mode: chown
  std::optional<gid_t> group;
  friend bool operator==(const VhostUserEndpoint&, const VhostUserEndpoint&) = default;
};

class VhostUserService {
 public:
  // marker_dir: where server-mode sockets are recorded (created when absent). Throws std::system_error when the
  // epoll instance or thread cannot be created.
  explicit VhostUserService(std::string marker_dir);
  ~VhostUserService();  // stops the thread; detaches whatever is still attached
  VhostUserService(const VhostUserService&) = delete;
  VhostUserService& operator=(const VhostUserService&) = delete;

  // Serves `port` on `ep`. Server mode: false and *error when the socket cannot be created (path taken, bad
  // directory); client mode never fails here (the port waits and retries).
  bool attach(VhostUserPort* port, const VhostUserEndpoint& ep, std::string* error) VPCD_EXCLUDES(mu_);
  // Stops serving the port: closes its connection (the port's rings and memory are released) and, in server mode,
  // removes the socket it created. Synchronous; idempotent.
  void detach(VhostUserPort* port) VPCD_EXCLUDES(mu_);

  std::chrono::milliseconds reconnect_interval{200};
  std::chrono::milliseconds error_backoff{1000};

 private:
  struct Conn {
    uint64_t id = 0;
    VhostUserPort* port = nullptr;
    VhostUserEndpoint ep;
    UniqueFd listen;  // server mode
    UniqueFd sock;    // the front-end connection
    std::chrono::steady_clock::time_point next_try{};
    std::string last_wait;  // the last waiting detail given to the port
  };

  void run();
  void handle_event(uint64_t tag, uint32_t events) VPCD_REQUIRES(mu_);
  void try_connect(Conn& c) VPCD_REQUIRES(mu_);
  void adopt_connection(Conn& c, UniqueFd fd) VPCD_REQUIRES(mu_);
  void disconnect(Conn& c, const std::string& error) VPCD_REQUIRES(mu_);
  void serve_message(Conn& c) VPCD_REQUIRES(mu_);
  bool make_server_socket(Conn& c, std::string* error) VPCD_REQUIRES(mu_);
  void remove_server_socket(Conn& c) VPCD_REQUIRES(mu_);
  std::string marker_path(const std::string& sock_path) const;

  const std::string marker_dir_;
  UniqueFd epfd_;
  UniqueFd wake_;  // eventfd: attach/detach/stop
  std::atomic<bool> stop_{false};
  Mutex mu_;
  std::map<uint64_t, Conn> conns_ VPCD_GUARDED_BY(mu_);
  uint64_t next_id_ VPCD_GUARDED_BY(mu_) = 1;
  std::thread thread_;
};

}  // namespace vpcd::dp::vhost
