// SoraRunner: the iPhone side of `ondevice-sora generate --device`. One screen that says what it serves; the
// runner core (ios/runner-core) answers the protocol on 127.0.0.1:7315 (a Mac reaches it through usbmuxd; nothing
// on the network can), running the CoreML blocks of the model folder that `ondevice-sora device setup` copied
// into Documents/model. The screen stays awake while the app serves: iOS suspends a locked app, and a suspended
// runner would leave the host waiting mid-generation.
//
// Needs UIKit, so it is built by xcodebuild on a Mac only; the rest of the app is type-checked on Linux too
// (scripts/check-coreml-bridge.sh).
#import <UIKit/UIKit.h>

#include <memory>
#include <string>
#include <sys/utsname.h>

#include "coreml_executor.h"
#include "loopback_server.h"
#include "ns_string.h"
#include "runner.h"

namespace {

constexpr uint16_t kRunnerPort = 7315;  // DEFAULT_RUNNER_PORT in src/runtime/runner-messages.ts

std::string MachineModel() {
  utsname name{};
  uname(&name);
  return name.machine;  // e.g. iPhone15,2
}

sora::runner::Json DeviceIdentity() {
  UIDevice* device = UIDevice.currentDevice;
  return sora::runner::Json(sora::runner::Json::Object{
      {"name", sora::ToStdString(device.name)},
      {"model", MachineModel()},
      {"os", sora::ToStdString(device.systemName)},
      {"osVersion", sora::ToStdString(device.systemVersion)},
      {"arch", "arm64"},
  });
}

std::string DirectoryOf(NSSearchPathDirectory which) {
  return sora::ToStdString(NSSearchPathForDirectoriesInDomains(which, NSUserDomainMask, YES).firstObject);
}

}  // namespace

@interface SoraRunnerDelegate : UIResponder <UIApplicationDelegate>
@property(strong, nonatomic) UIWindow* window;
@end

@implementation SoraRunnerDelegate {
  std::unique_ptr<sora::runner::CoreMLExecutor> _executor;
  std::unique_ptr<sora::runner::Runner> _runner;
  std::unique_ptr<sora::runner::LoopbackServer> _server;
}

- (BOOL)application:(UIApplication*)application didFinishLaunchingWithOptions:(NSDictionary*)options {
  self.window = [[UIWindow alloc] initWithFrame:UIScreen.mainScreen.bounds];
  UIViewController* controller = [[UIViewController alloc] init];
  UILabel* label = [[UILabel alloc] initWithFrame:CGRectInset(self.window.bounds, 24, 96)];
  label.numberOfLines = 0;
  label.font = [UIFont monospacedSystemFontOfSize:15 weight:UIFontWeightRegular];
  controller.view.backgroundColor = UIColor.systemBackgroundColor;
  [controller.view addSubview:label];
  self.window.rootViewController = controller;
  [self.window makeKeyAndVisible];
  label.text = [NSString stringWithUTF8String:[self startServing].c_str()];
  return YES;
}

// Starts the runner; what the screen shows.
- (std::string)startServing {
  const std::string modelDir = DirectoryOf(NSDocumentDirectory) + "/model";
  const std::string cacheDir = DirectoryOf(NSCachesDirectory) + "/compiled";
  std::string error;
  _executor = sora::runner::CoreMLExecutor::Open(modelDir, cacheDir, &error);
  if (_executor == nullptr) return "No model to serve.\n\n" + error + "\n\nOn the Mac: ondevice-sora device setup --model <CoreML folder>";
  sora::runner::RunnerConfig config;
  config.identity = sora::runner::Json(sora::runner::Json::Object{
      {"runner", "SoraRunner (iOS)"},
      {"device", DeviceIdentity()},
      {"backend", "coreml"},
      {"model", _executor->modelIdentity()},
  });
  _runner = std::make_unique<sora::runner::Runner>(*_executor, config);
  _server = std::make_unique<sora::runner::LoopbackServer>(*_runner);
  const auto port = _server->start(kRunnerPort, &error);
  if (!port) return "Cannot listen: " + error;
  UIApplication.sharedApplication.idleTimerDisabled = YES;
  const std::string model = _executor->modelIdentity().find("name")->asString();
  return "Serving " + model + " on 127.0.0.1:" + std::to_string(*port) +
         " (USB only).\n\nOn the Mac:\nondevice-sora generate \"prompt\" -o out.mp4 --device auto --model <the same folder>\n\nKeep this app open; the screen stays on.";
}

- (void)applicationWillTerminate:(UIApplication*)application {
  UIApplication.sharedApplication.idleTimerDisabled = NO;
  if (_server != nullptr) _server->stop();
}

@end

int main(int argc, char* argv[]) {
  @autoreleasepool {
    return UIApplicationMain(argc, argv, nil, NSStringFromClass([SoraRunnerDelegate class]));
  }
}
