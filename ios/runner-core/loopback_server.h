// The runner's listener on the iPhone: TCP on 127.0.0.1 only (a Mac reaches it through usbmuxd; nothing on the
// network can), one thread per connection feeding a Session. POSIX sockets, so that it builds and is tested on
// Linux as it runs on iOS.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runner.h"

namespace sora::runner {

class LoopbackServer {
 public:
  explicit LoopbackServer(Runner& runner) : runner_(runner) {}
  ~LoopbackServer();

  // Binds 127.0.0.1:port (0: a free port) and starts accepting; the bound port, or nullopt with `error` set.
  std::optional<uint16_t> start(uint16_t port, std::string* error);
  // Stops accepting, ends every connection and waits for their sessions to finish.
  void stop();

 private:
  void acceptLoop();
  void serve(int socket);

  Runner& runner_;
  int listener_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<int> sockets_;
  std::vector<std::thread> connections_;
};

}  // namespace sora::runner
