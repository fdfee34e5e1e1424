#include "page_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <vector>

namespace sora {
namespace {

// Large enough that syscall overhead vanishes, small enough not to matter next to a model block.
constexpr uint64_t kReadChunk = uint64_t{8} << 20;

[[noreturn]] void ThrowErrno(int code, const std::string& operation, const std::string& path) {
  throw std::system_error(code, std::generic_category(), operation + " " + path);
}

class ReadOnlyFile {
 public:
  explicit ReadOnlyFile(const std::string& path) : path_(path), fd_(open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) ThrowErrno(errno, "open", path);
  }
  ~ReadOnlyFile() { close(fd_); }
  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  uint64_t Size() const {
    struct stat info {};
    if (fstat(fd_, &info) != 0) ThrowErrno(errno, "stat", path_);
    return static_cast<uint64_t>(info.st_size);
  }

 private:
  std::string path_;
  int fd_;
};

// A shared read-only mapping of a whole non-empty file; mapping alone reads nothing from disk.
class FileMapping {
 public:
  FileMapping(const ReadOnlyFile& file, uint64_t size)
      : size_(size), address_(mmap(nullptr, size, PROT_READ, MAP_SHARED, file.fd(), 0)) {
    if (address_ == MAP_FAILED) ThrowErrno(errno, "mmap", file.path());
  }
  ~FileMapping() { munmap(address_, size_); }
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;

  void* address() const { return address_; }

 private:
  uint64_t size_;
  void* address_;
};

// Starts asynchronous readahead of the whole range so the disk queue stays full while we read.
void AdviseWillNeed(const ReadOnlyFile& file, uint64_t offset, uint64_t length) {
#if defined(__APPLE__)
  // radvisory.ra_count is an int: advise in pieces of 1 GiB.
  constexpr uint64_t kPiece = uint64_t{1} << 30;
  for (uint64_t done = 0; done < length; done += kPiece) {
    radvisory advice{};
    advice.ra_offset = static_cast<off_t>(offset + done);
    advice.ra_count = static_cast<int>(std::min(length - done, kPiece));
    fcntl(file.fd(), F_RDADVISE, &advice);  // only a hint: the read loop below does the work regardless
  }
#else
  posix_fadvise(file.fd(), static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_WILLNEED);
#endif
}

// Readahead is a hint the kernel may trim; reading every page is what guarantees residency on return.
uint64_t ReadThrough(const ReadOnlyFile& file, uint64_t offset, uint64_t end) {
  std::vector<char> buffer(std::min(kReadChunk, end - offset));
  uint64_t position = offset;
  while (position < end) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(end - position, buffer.size()));
    const ssize_t got = pread(file.fd(), buffer.data(), want, static_cast<off_t>(position));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) ThrowErrno(errno, "read", file.path());
    if (got == 0) break;  // the file shrank meanwhile
    position += static_cast<uint64_t>(got);
  }
  return position - offset;
}

}  // namespace

uint64_t PrefetchFile(const std::string& path, uint64_t offset, uint64_t length) {
  const ReadOnlyFile file(path);
  const uint64_t size = file.Size();
  const uint64_t start = std::min(offset, size);
  const uint64_t end = length == 0 ? size : std::min(size, start + length);
  if (start == end) return 0;
  AdviseWillNeed(file, start, end - start);
  return ReadThrough(file, start, end);
}

void EvictFile(const std::string& path) {
  const ReadOnlyFile file(path);
  // Dirty pages cannot be dropped; a freshly written file (a model generated moments ago) has many.
  if (fsync(file.fd()) != 0) ThrowErrno(errno, "fsync", path);
#if defined(__APPLE__)
  // macOS has no DONTNEED; invalidating a shared mapping drops the file's unmapped clean pages from the UBC.
  const uint64_t size = file.Size();
  if (size == 0) return;
  const FileMapping mapping(file, size);
  if (msync(mapping.address(), size, MS_INVALIDATE) != 0) ThrowErrno(errno, "msync", path);
#else
  const int code = posix_fadvise(file.fd(), 0, 0, POSIX_FADV_DONTNEED);
  if (code != 0) ThrowErrno(code, "posix_fadvise", path);
#endif
}

uint64_t ResidentBytes(const std::string& path) {
  const ReadOnlyFile file(path);
  const uint64_t size = file.Size();
  if (size == 0) return 0;
  const FileMapping mapping(file, size);
  const uint64_t pageSize = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
#if defined(__APPLE__)
  // Darwin declares mincore(caddr_t, size_t, char*).
  std::vector<char> pages((size + pageSize - 1) / pageSize);
  const int status = mincore(static_cast<char*>(mapping.address()), size, pages.data());
#else
  std::vector<unsigned char> pages((size + pageSize - 1) / pageSize);
  const int status = mincore(mapping.address(), size, pages.data());
#endif
  if (status != 0) ThrowErrno(errno, "mincore", path);
  const auto resident = std::count_if(pages.begin(), pages.end(), [](auto page) { return (page & 1) != 0; });
  return std::min(size, static_cast<uint64_t>(resident) * pageSize);
}

}  // namespace sora
