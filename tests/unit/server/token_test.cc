// Tokens: format, verification, tampering, id extraction.
#include "server/common/token.h"

#include <gtest/gtest.h>

#include <set>

namespace vpcd {
namespace {

TEST(Token, HasTheDocumentedFormat) {
  NewToken t = make_token(http::Role::kAdmin);
  ASSERT_EQ(t.text.size(), kTokenLen);
  EXPECT_EQ(t.text.substr(0, 5), "vpcd_");
  EXPECT_EQ(t.text[5 + kTokenIdLen], '_');
  EXPECT_EQ(t.text.substr(5, kTokenIdLen), t.record.id);
  EXPECT_EQ(t.record.role, "admin");
  EXPECT_EQ(t.record.salt_hex.size(), 32u);
  EXPECT_EQ(t.record.hash_hex.size(), 64u);
  EXPECT_EQ(t.text.find(t.record.hash_hex), std::string::npos);
  EXPECT_EQ(make_token(http::Role::kViewer).record.role, "viewer");
  EXPECT_THROW(make_token(http::Role::kNone), std::runtime_error);
}

TEST(Token, VerifiesOnlyTheRightSecret) {
  NewToken t = make_token(http::Role::kViewer);
  EXPECT_TRUE(verify(t.text, t.record));
  NewToken other = make_token(http::Role::kViewer);
  EXPECT_FALSE(verify(other.text, t.record));
  EXPECT_FALSE(verify(t.text, other.record));

  // Flip each secret character to another base64url character: every one must fail.
  for (size_t i = 5 + kTokenIdLen + 1; i < t.text.size(); ++i) {
    std::string bad = t.text;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(verify(bad, t.record)) << i;
  }
  std::string wrong_id = t.text;
  wrong_id[6] = wrong_id[6] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(verify(wrong_id, t.record));
  EXPECT_FALSE(verify(t.text.substr(0, t.text.size() - 1), t.record));
  EXPECT_FALSE(verify(t.text + "A", t.record));
  EXPECT_FALSE(verify("", t.record));

  TokenRecord tampered = t.record;
  tampered.hash_hex[0] = tampered.hash_hex[0] == '0' ? '1' : '0';
  EXPECT_FALSE(verify(t.text, tampered));
  tampered = t.record;
  tampered.salt_hex[0] = tampered.salt_hex[0] == '0' ? '1' : '0';
  EXPECT_FALSE(verify(t.text, tampered));
  tampered = t.record;
  tampered.hash_hex = "zz";
  EXPECT_FALSE(verify(t.text, tampered));
}

TEST(Token, IdOfWellFormedTokensOnly) {
  NewToken t = make_token(http::Role::kAdmin);
  auto id = token_id_of(t.text);
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, t.record.id);
  EXPECT_FALSE(token_id_of(""));
  EXPECT_FALSE(token_id_of("vpcd_"));
  EXPECT_FALSE(token_id_of("xpcd" + t.text.substr(4)));
  std::string bad_sep = t.text;
  bad_sep[5 + kTokenIdLen] = '-';
  EXPECT_FALSE(token_id_of(bad_sep));
  std::string bad_char = t.text;
  bad_char[5] = '!';
  EXPECT_FALSE(token_id_of(bad_char));
  std::string upper_id = t.text;
  upper_id[5] = 'A';
  EXPECT_FALSE(token_id_of(upper_id));
}

TEST(Token, IsRandom) {
  std::set<std::string> ids, texts;
  for (int i = 0; i < 200; ++i) {
    NewToken t = make_token(http::Role::kAdmin);
    ids.insert(t.record.id);
    texts.insert(t.text);
  }
  EXPECT_EQ(ids.size(), 200u);
  EXPECT_EQ(texts.size(), 200u);
}

TEST(Token, RoleNames) {
  EXPECT_EQ(parse_role("admin"), http::Role::kAdmin);
  EXPECT_EQ(parse_role("viewer"), http::Role::kViewer);
  EXPECT_FALSE(parse_role("root"));
  EXPECT_EQ(role_name(http::Role::kViewer), "viewer");
}

}  // namespace
}  // namespace vpcd
