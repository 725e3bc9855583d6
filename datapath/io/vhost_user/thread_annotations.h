// Clang -Wthread-safety attributes (STYLE.md section 3: "annotate every vpcd mutex"); no-ops for other compilers.
// Threading: macros only.
#pragma once

#include <mutex>

#if defined(__clang__)
#define VPCD_TSA(x) __attribute__((x))
#else
#define VPCD_TSA(x)
#endif

#define VPCD_CAPABILITY(x) VPCD_TSA(capability(x))
#define VPCD_GUARDED_BY(x) VPCD_TSA(guarded_by(x))
#define VPCD_PT_GUARDED_BY(x) VPCD_TSA(pt_guarded_by(x))
#define VPCD_REQUIRES(...) VPCD_TSA(requires_capability(__VA_ARGS__))
#define VPCD_ACQUIRE(...) VPCD_TSA(acquire_capability(__VA_ARGS__))
#define VPCD_RELEASE(...) VPCD_TSA(release_capability(__VA_ARGS__))
#define VPCD_EXCLUDES(...) VPCD_TSA(locks_excluded(__VA_ARGS__))
#define VPCD_NO_TSA VPCD_TSA(no_thread_safety_analysis)

namespace vpcd::dp::vhost {

// std::mutex with the capability attribute, so members can say VPCD_GUARDED_BY(mu_).
class VPCD_CAPABILITY("mutex") Mutex {
 public:
  void lock() VPCD_ACQUIRE() { mu_.lock(); }
  void unlock() VPCD_RELEASE() { mu_.unlock(); }
  bool try_lock() VPCD_TSA(try_acquire_capability(true)) { return mu_.try_lock(); }
  // Tells the analysis the caller holds this mutex (a lambda called under it).
  void assert_held() const VPCD_TSA(assert_capability(this)) {}

 private:
  std::mutex mu_;
};

class VPCD_TSA(scoped_lockable) MutexLock {
 public:
  explicit MutexLock(Mutex& m) VPCD_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~MutexLock() VPCD_RELEASE() { m_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& m_;
};

}  // namespace vpcd::dp::vhost
