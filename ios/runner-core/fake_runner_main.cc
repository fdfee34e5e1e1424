// The device side's runner core and loopback listener with the fake executor, as a process: what the TypeScript
// tests (test/runner-core.test.ts) connect their RemoteBackend to, so both sides of the protocol meet over real
// TCP on Linux. Prints "listening 127.0.0.1:PORT", serves until stdin closes.
//
// Usage: fake_runner [port]     (default 0: a free port)
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fake_executor.h"
#include "loopback_server.h"
#include "runner.h"

int main(int argc, char** argv) {
  using namespace sora::runner;
  const long port = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 0;
  FakeExecutor executor;
  RunnerConfig config;
  config.identity = FakeIdentity();
  Runner runner(executor, config);
  LoopbackServer server(runner);
  std::string error;
  const auto bound = server.start(static_cast<uint16_t>(port), &error);
  if (!bound) {
    std::fprintf(stderr, "fake_runner: cannot listen on %s\n", error.c_str());
    return 1;
  }
  std::printf("listening 127.0.0.1:%u\n", static_cast<unsigned>(*bound));
  std::fflush(stdout);
  while (std::getchar() != EOF) {
  }
  server.stop();
  return 0;
}
