// Static files: index, content types, traversal and symlink escapes refused.
#include "server/http/static_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace vpcd::http {
namespace {

struct TempDir {
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "vpcd_static_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path + "/web";
    std::filesystem::create_directories(root_ + "/js");
    std::filesystem::create_directories(root_ + "/sub");
    std::ofstream(root_ + "/index.html") << "<html>home</html>";
    std::ofstream(root_ + "/js/app.js") << "console.log(1)";
    std::ofstream(root_ + "/style.css") << "body{}";
    std::ofstream(root_ + "/logo.svg") << "<svg/>";
    std::ofstream(root_ + "/sub/index.html") << "sub";
    std::ofstream(dir_.path + "/secret.txt") << "secret";
    std::filesystem::create_symlink(dir_.path + "/secret.txt", root_ + "/escape.txt");
    std::filesystem::create_symlink(dir_.path, root_ + "/up");
  }
  TempDir dir_;
  std::string root_;
};

TEST_F(StaticFilesTest, ServesFilesWithTypes) {
  StaticFiles sf(root_);
  struct Case {
    const char* path;
    const char* body;
    const char* type;
  } const kCases[] = {
      {"/", "<html>home</html>", "text/html; charset=utf-8"},
      {"/index.html", "<html>home</html>", "text/html; charset=utf-8"},
      {"/js/app.js", "console.log(1)", "text/javascript; charset=utf-8"},
      {"/style.css", "body{}", "text/css; charset=utf-8"},
      {"/logo.svg", "<svg/>", "image/svg+xml"},
      {"/sub", "sub", "text/html; charset=utf-8"},
      {"/sub/", "sub", "text/html; charset=utf-8"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.path);
    Response r = sf.serve(c.path);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, c.body);
    EXPECT_EQ(r.content_type, c.type);
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].first, "Cache-Control");
    EXPECT_EQ(r.headers[0].second, "no-cache");
  }
  EXPECT_EQ(StaticFiles::content_type_for("a.png"), "image/png");
  EXPECT_EQ(StaticFiles::content_type_for("a.json"), "application/json");
  EXPECT_EQ(StaticFiles::content_type_for("a.bin"), "application/octet-stream");
}

TEST_F(StaticFilesTest, RefusesTraversal) {
  StaticFiles sf(root_);
  for (const char* p : {"/../secret.txt", "/js/../../secret.txt", "/..", "/sub/..", "relative"}) {
    SCOPED_TRACE(p);
    Response r = sf.serve(p);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body.find("secret\""), std::string::npos);
  }
  for (const char* p : {"/escape.txt", "/up/secret.txt", "/missing.html", "/js"}) {
    SCOPED_TRACE(p);
    Response r = sf.serve(p);
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  EXPECT_EQ(sf.serve(std::string_view("/index.html\0x", 13)).status, 400);
}

TEST_F(StaticFilesTest, MissingOrEmptyRootServesNothing) {
  EXPECT_EQ(StaticFiles("").serve("/").status, 404);
  EXPECT_EQ(StaticFiles(dir_.path + "/absent").serve("/").status, 404);
  EXPECT_EQ(StaticFiles("/").serve("/etc/passwd").status, 404);
}

}  // namespace
}  // namespace vpcd::http
