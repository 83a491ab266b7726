// The AWS profile sources beyond static keys: credential_process, role_arn with
// source_profile or credential_source (STS AssumeRole, SigV4-signed), SSO (the CLI's
// token cache, then the portal), and the IMDSv1 fallback; against the in-process mock
// (whose fake STS checks the signatures) or a capturing one-shot server.

#include <utility>  // before Asio (Boost 1.74 + GCC 12)

#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "gw/credentials/parse.hpp"
#include "gw/providers/sigv4.hpp"
#include "test_support.hpp"

namespace gw::credentials {
namespace {

using namespace std::chrono_literals;
using test::env_map;
using steady = std::chrono::steady_clock;
using sys_clock = std::chrono::system_clock;

// ---- command-line splitting -----------------------------------------------------------

std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  std::string err;
  EXPECT_TRUE(split_command_line(s, out, err)) << s << ": " << err;
  return out;
}

std::string split_error(std::string_view s) {
  std::vector<std::string> out;
  std::string err;
  EXPECT_FALSE(split_command_line(s, out, err)) << s;
  return err;
}

TEST(SplitCommandLine, ShellWords) {
  using v = std::vector<std::string>;
  EXPECT_EQ(words("  aws-vault  export --format=json-v1 prod "),
            (v{"aws-vault", "export", "--format=json-v1", "prod"}));
  EXPECT_EQ(words(R"(/opt/my tool)"), (v{"/opt/my", "tool"}));
  EXPECT_EQ(words(R"("/opt/my tool/helper" 'a b' c\ d)"), (v{"/opt/my tool/helper", "a b", "c d"}));
  EXPECT_EQ(words(R"(printf '{"Version": 1}')"), (v{"printf", R"({"Version": 1})"}));
  EXPECT_EQ(words(R"("a\"b\\c\$d\x" 'e\f')"), (v{R"(a"b\c$d\x)", R"(e\f)"}));
  EXPECT_EQ(words(R"(x"y"'z' "" '')"), (v{"xyz", "", ""}));
  EXPECT_EQ(words("a\tb\nc"), (v{"a", "b", "c"}));
  EXPECT_TRUE(words("   ").empty());
  EXPECT_EQ(split_error("echo 'open"), "unterminated single quote");
  EXPECT_EQ(split_error(R"(echo "open)"), "unterminated double quote");
  EXPECT_EQ(split_error(R"(echo "a\")"), "unterminated double quote");
  EXPECT_EQ(split_error("echo \\"), "trailing backslash");
}

// ---- fixture -----------------------------------------------------------------------------

struct AwsSources : test::credentials_fixture {
  std::string home() const { return (dir.path / "home").string(); }

  /// An executable shell script in the temp directory.
  std::string script(const std::string& name, const std::string& body) {
    std::string path = dir.write(name, "#!/bin/sh\n" + body);
    ::chmod(path.c_str(), 0755);
    return path;
  }

  std::shared_ptr<aws_credentials_provider> provider(env_map vars, std::string profile = {},
                                                     std::chrono::milliseconds process_timeout = 10s) {
    auto cfg = aws_config(std::move(vars), home());
    cfg.profile = std::move(profile);
    cfg.process_timeout = process_timeout;
    return aws_credentials_provider::create(cfg, io);
  }

  std::string iso_in(std::chrono::seconds d) { return format_iso8601(sys_clock::now() + d); }
};

/// True once `pid` is neither running nor a zombie (no /proc entry, or state Z for a
/// process someone else has to reap).
bool process_gone(long pid, bool zombie_ok) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  return zombie_ok && close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

// ---- credential_process ------------------------------------------------------------------

TEST_F(AwsSources, ProcessStaticKeysNeverRefresh) {
  // Quotes: the JSON is one word, "sec ret" another (printf fills it in).
  std::string config = dir.write(
      "config",
      "[profile proc]\n"
      R"(credential_process = printf '{"Version": 1, "AccessKeyId": "AKIDPROC", "SecretAccessKey": "%s"}' "sec ret")"
      "\n");
  auto p = provider({{"AWS_CONFIG_FILE", config}, {"AWS_PROFILE", "proc"}});
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id, "AKIDPROC");
  EXPECT_EQ(c->secret_access_key, "sec ret");
  EXPECT_EQ(c->session_token, "");
  EXPECT_EQ(c->expiration, sys_clock::time_point::max());
  EXPECT_EQ(p->source(), "process:proc");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(p->stats().refreshes, 0u);
  EXPECT_EQ(p->stats().requests, 1u);
}

TEST_F(AwsSources, ProcessNonZeroExitReportsStderr) {
  std::string helper =
      script("helper.sh",
             "echo '{\"Version\":1,\"AccessKeyId\":\"AKIDLEAK\",\"SecretAccessKey\":\"leaked-secret\"}'\n"
             "printf 'helper: token expired\\nplease log in\\n' >&2\n"
             "exit 3\n");
  std::string config = dir.write("config", "[profile proc]\ncredential_process = " + helper + " --secret-arg\n");
  auto p = provider({{"AWS_CONFIG_FILE", config}}, "proc");
  auto [c, err] = get_sync(*p);
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("profile 'proc' in " + config + ": credential_process '" + helper + "' exited with status 3"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("stderr: helper: token expired please log in"), std::string::npos) << err;
  EXPECT_EQ(err.find("leaked-secret"), std::string::npos) << "stdout may hold secrets: " << err;
  EXPECT_EQ(err.find("--secret-arg"), std::string::npos) << "arguments may hold secrets: " << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
}

TEST_F(AwsSources, ProcessTimeoutKillsTheChildAndItsGroup) {
  std::string pid_file = (dir.path / "pid").string(), child_file = (dir.path / "child").string();
  std::string helper = script("slow.sh", "echo $$ > " + pid_file + "\nsleep 30 &\necho $! > " + child_file +
                                             "\nwait\necho '{\"Version\":1}'\n");
  std::string config = dir.write("config", "[profile slow]\ncredential_process = " + helper + "\n");
  auto p = provider({{"AWS_CONFIG_FILE", config}}, "slow", 300ms);
  auto t0 = steady::now();
  auto [c, err] = get_sync(*p);
  EXPECT_LT(steady::now() - t0, 3s);
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("credential_process '" + helper + "': timed out after 300 ms"), std::string::npos) << err;
  long pid = 0, child = 0;
  std::ifstream(pid_file) >> pid;
  std::ifstream(child_file) >> child;
  ASSERT_GT(pid, 0);
  ASSERT_GT(child, 0);
  // The helper was killed and reaped by the provider (a zombie would still answer kill 0).
  errno = 0;
  EXPECT_EQ(::kill(static_cast<pid_t>(pid), 0), -1);
  EXPECT_EQ(errno, ESRCH);
  // Its own child (same process group) was killed too; whoever inherited it reaps it.
  auto deadline = steady::now() + 2s;
  while (!process_gone(child, true) && steady::now() < deadline) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(process_gone(child, true)) << "sleep " << child << " survived the timeout";
}

TEST_F(AwsSources, ProcessBadOutputIsAClearError) {
  std::string config = dir.write(
      "config",
      "[profile text]\ncredential_process = printf 'not json'\n"
      "[profile v2]\n"
      R"(credential_process = printf '{"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "S"}')"
      "\n[profile noversion]\n"
      R"(credential_process = printf '{"AccessKeyId": "A", "SecretAccessKey": "S"}')"
      "\n[profile nosecret]\n"
      R"(credential_process = printf '{"Version": 1, "AccessKeyId": "A"}')"
      "\n[profile badexp]\n"
      R"(credential_process = printf '{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S", "Expiration": "soon"}')"
      "\n[profile quote]\ncredential_process = printf 'unterminated\n"
      "[profile missing]\ncredential_process = /nonexistent/helper --flag\n");
  std::vector<std::pair<std::string, std::string>> cases{
      {"text", "output is not a JSON object"},
      {"v2", "output has Version 2, only Version 1 is supported"},
      {"noversion", "output lacks Version"},
      {"nosecret", "output lacks SecretAccessKey"},
      {"badexp", "output Expiration is not an ISO 8601 time"},
      {"quote", "credential_process: unterminated single quote"},
      {"missing", "credential_process '/nonexistent/helper': cannot run '/nonexistent/helper'"}};
  for (auto& [profile, expected] : cases) {
    auto p = provider({{"AWS_CONFIG_FILE", config}}, profile);
    auto [c, err] = get_sync(*p);
    EXPECT_FALSE(c) << profile;
    EXPECT_NE(err.find("profile '" + profile + "' in " + config), std::string::npos) << err;
    EXPECT_NE(err.find(expected), std::string::npos) << profile << ": " << err;
  }
}

TEST_F(AwsSources, ProcessWithExpirationRunsAgainAtRefresh) {
  std::string count = (dir.path / "count").string();
  std::string helper = script(
      "rotating.sh",
      "n=$(cat " + count + " 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > " + count +
          "\nexp=$(date -u -d \"@$(( $(date +%s) + 4 ))\" +%Y-%m-%dT%H:%M:%SZ)\n"
          "printf '{\"Version\":1,\"AccessKeyId\":\"AKIDRUN%s\",\"SecretAccessKey\":\"s\",\"SessionToken\":\"t\","
          "\"Expiration\":\"%s\"}' \"$n\" \"$exp\"\n");
  std::string config = dir.write("config", "[profile rot]\ncredential_process = " + helper + "\n");
  auto p = provider({{"AWS_CONFIG_FILE", config}, {"AWS_PROFILE", "rot"}});
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id, "AKIDRUN1");
  EXPECT_NE(c->expiration, sys_clock::time_point::max());
  // 3-4 s credentials are renewed at 80% of their life: by running the process again.
  auto deadline = steady::now() + 8s;
  std::string now_key = c->access_key_id;
  while (now_key == "AKIDRUN1" && steady::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    if (auto cur = p->current()) now_key = cur->access_key_id;
  }
  EXPECT_EQ(now_key, "AKIDRUN2");
  EXPECT_GE(p->stats().refreshes, 1u);
  EXPECT_EQ(p->source(), "process:rot");
}

// ---- role_arn + source_profile -----------------------------------------------------------

constexpr const char* mock_keys = "aws_access_key_id = AKIDMOCK\naws_secret_access_key = mock-aws-secret\n";

TEST_F(AwsSources, AssumeRoleChainOfTwoSignedBySourceCredentials) {
  start_mock();
  std::string creds = dir.write("credentials", std::string("[base]\n") + mock_keys);
  std::string config = dir.write("config",
                                 "[profile first]\nrole_arn = arn:aws:iam::123456789012:role/first\n"
                                 "source_profile = base\n"
                                 "[profile second]\nrole_arn = arn:aws:iam::123456789012:role/second\n"
                                 "source_profile = first\nrole_session_name = gw-test\nregion = eu-west-1\n");
  auto p = provider({{"AWS_SHARED_CREDENTIALS_FILE", creds},
                     {"AWS_CONFIG_FILE", config},
                     {"AWS_PROFILE", "second"},
                     {"AWS_ENDPOINT_URL_STS", mock_url()}});
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  // The mock issues keys only to correctly signed calls: the second call was signed
  // with the temporary keys (and session token) the first one returned.
  EXPECT_EQ(c->access_key_id.rfind("ASIAMOCK", 0), 0u) << c->access_key_id;
  EXPECT_FALSE(c->session_token.empty());
  auto left = c->expiration - sys_clock::now();
  EXPECT_GT(left, 3500s);
  EXPECT_LT(left, 3700s);
  EXPECT_EQ(p->source(), "assume_role:second");
  EXPECT_EQ(mock_stat("sts_calls"), 2);
}

TEST_F(AwsSources, AssumeRoleWithAWrongSecretIsAClearError) {
  start_mock();
  std::string creds = dir.write("credentials",
                                "[base]\naws_access_key_id = AKIDMOCK\naws_secret_access_key = not-the-secret\n"
                                "[stranger]\naws_access_key_id = AKIDUNKNOWN\naws_secret_access_key = x\n");
  std::string config =
      dir.write("config",
                "[profile r]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = base\n"
                "[profile s]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = stranger\n");
  env_map vars{
      {"AWS_SHARED_CREDENTIALS_FILE", creds}, {"AWS_CONFIG_FILE", config}, {"AWS_ENDPOINT_URL_STS", mock_url()}};
  auto [c, err] = get_sync(*provider(vars, "r"));
  EXPECT_FALSE(c);
  EXPECT_NE(
      err.find("profile 'r' in " + config + ": STS AssumeRole at " + mock_url() + ": HTTP 403 SignatureDoesNotMatch"),
      std::string::npos)
      << err;
  EXPECT_EQ(err.find("not-the-secret"), std::string::npos) << err;
  auto [c2, err2] = get_sync(*provider(vars, "s"));
  EXPECT_FALSE(c2);
  EXPECT_NE(err2.find("HTTP 403 InvalidClientTokenId"), std::string::npos) << err2;
  EXPECT_EQ(mock_stat("sts_calls"), 0);
}

TEST_F(AwsSources, AssumeRoleSendsExternalIdDurationAndAValidSignature) {
  auto exp = iso_in(3600s);
  std::string xml =
      "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials>"
      "<AccessKeyId>ASIACAPTURED</AccessKeyId><SecretAccessKey>captured-secret</SecretAccessKey>"
      "<SessionToken>captured-token</SessionToken><Expiration>" +
      exp +
      "</Expiration></Credentials>"
      "</AssumeRoleResult></AssumeRoleResponse>";
  test::capture_server sts("HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: " +
                           std::to_string(xml.size()) + "\r\nconnection: close\r\n\r\n" + xml);
  std::string creds = dir.write("credentials",
                                "[base]\naws_access_key_id = AKIDCAPTURE\naws_secret_access_key = capture-secret\n"
                                "aws_session_token = capture-token\n");
  std::string config = dir.write("config",
                                 "[profile ext]\nrole_arn = arn:aws:iam::123456789012:role/ext\nsource_profile = base\n"
                                 "external_id = corp-ext-42\nduration_seconds = 1800\nrole_session_name = ext-session\n"
                                 "region = eu-west-1\n");
  auto p = provider({{"AWS_SHARED_CREDENTIALS_FILE", creds},
                     {"AWS_CONFIG_FILE", config},
                     {"AWS_PROFILE", "ext"},
                     {"AWS_ENDPOINT_URL_STS", sts.url()}});
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id, "ASIACAPTURED");
  EXPECT_EQ(c->session_token, "captured-token");
  EXPECT_EQ(format_iso8601(c->expiration), exp);

  std::string raw = sts.request();
  auto head_end = raw.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << raw;
  std::string body = raw.substr(head_end + 4);
  for (std::string part :
       {"Action=AssumeRole&", "Version=2011-06-15", "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fext",
        "RoleSessionName=ext-session", "&ExternalId=corp-ext-42", "&DurationSeconds=1800"})
    EXPECT_NE(body.find(part), std::string::npos) << part << " missing in " << body;
  // Parse the head and check the signature as STS would.
  std::string request_line = raw.substr(0, raw.find("\r\n"));
  EXPECT_EQ(request_line, "POST / HTTP/1.1");
  providers::header_list headers;
  std::size_t pos = raw.find("\r\n") + 2;
  while (pos < head_end) {
    auto eol = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, eol - pos);
    auto colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    headers.emplace_back(name, value);
    pos = eol + 2;
  }
  std::string auth;
  for (auto& [k, v] : headers)
    if (k == "authorization") auth = v;
  EXPECT_NE(auth.find("Credential=AKIDCAPTURE/"), std::string::npos) << auth;
  EXPECT_NE(auth.find("/eu-west-1/sts/aws4_request"), std::string::npos) << "the profile's region signs: " << auth;
  providers::aws_key_lookup lookup = [](std::string_view akid) -> std::optional<providers::aws_credentials> {
    if (akid != "AKIDCAPTURE") return std::nullopt;
    return providers::aws_credentials{"AKIDCAPTURE", "capture-secret", "capture-token"};
  };
  auto check = providers::verify_sigv4("POST", "/", "", headers, body, lookup, sys_clock::now(), 300s, "sts");
  EXPECT_TRUE(check.ok()) << check.reason;
}

TEST_F(AwsSources, AssumeRoleCyclesAndLongChainsAreRefused) {
  start_mock();
  std::string creds = dir.write("credentials", std::string("[base]\n") + mock_keys);
  std::string roles;
  auto role = [&](const std::string& name, const std::string& source) {
    roles += "[profile " + name + "]\nrole_arn = arn:aws:iam::123456789012:role/" + name +
             "\nsource_profile = " + source + "\n";
  };
  role("a", "b");
  role("b", "a");
  role("r1", "r2");
  role("r2", "r3");
  role("r3", "r4");
  role("r4", "r5");
  role("r5", "base");
  role("r0", "r1");
  std::string config = dir.write("config", roles +
                                               "[profile self]\nrole_arn = arn:aws:iam::123456789012:role/self\n"
                                               "source_profile = self\n" +
                                               mock_keys);
  env_map vars{
      {"AWS_SHARED_CREDENTIALS_FILE", creds}, {"AWS_CONFIG_FILE", config}, {"AWS_ENDPOINT_URL_STS", mock_url()}};

  auto [c, err] = get_sync(*provider(vars, "a"));
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("profile 'b' (source_profile of 'a') in " + config + ": source_profile cycle: a -> b -> a"),
            std::string::npos)
      << err;
  EXPECT_EQ(mock_stat("sts_calls"), 0);

  auto [c6, err6] = get_sync(*provider(vars, "r0"));
  EXPECT_FALSE(c6);
  EXPECT_NE(err6.find("more than 5 roles chained through source_profile: r0 -> r1 -> r2 -> r3 -> r4 -> r5 -> base"),
            std::string::npos)
      << err6;
  EXPECT_EQ(mock_stat("sts_calls"), 0);

  auto p5 = provider(vars, "r1");
  auto [c5, err5] = get_sync(*p5);
  ASSERT_TRUE(c5) << err5;
  EXPECT_EQ(p5->source(), "assume_role:r1");
  EXPECT_EQ(mock_stat("sts_calls"), 5);

  // A profile may be its own source when it holds the keys.
  auto ps = provider(vars, "self");
  auto [cs, errs] = get_sync(*ps);
  ASSERT_TRUE(cs) << errs;
  EXPECT_EQ(ps->source(), "assume_role:self");
  EXPECT_EQ(mock_stat("sts_calls"), 6);
}

TEST_F(AwsSources, AssumeRoleFromACredentialProcessSource) {
  start_mock();
  std::string config = dir.write(
      "config",
      "[profile helper]\n"
      R"(credential_process = printf '{"Version": 1, "AccessKeyId": "AKIDMOCK", "SecretAccessKey": "mock-aws-secret"}')"
      "\n[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = helper\n");
  auto p = provider({{"AWS_CONFIG_FILE", config}, {"AWS_ENDPOINT_URL_STS", mock_url()}}, "role");
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(p->source(), "assume_role:role");
  EXPECT_EQ(mock_stat("sts_calls"), 1);
}

TEST_F(AwsSources, AssumeRoleConfigurationErrors) {
  std::string config = dir.write(
      "config",
      std::string("[profile base]\n") + mock_keys +
          "[profile both]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = base\ncredential_source = Environment\n"
          "[profile neither]\nrole_arn = arn:aws:iam::1:role/x\n"
          "[profile short]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = base\nduration_seconds = 60\n"
          "[profile bogus]\nrole_arn = arn:aws:iam::1:role/x\ncredential_source = Bogus\n"
          "[profile orphan]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = nope\n");
  std::vector<std::pair<std::string, std::string>> cases{
      {"both", "has both source_profile and credential_source"},
      {"neither", "has role_arn without source_profile, credential_source or web_identity_token_file"},
      {"short", "duration_seconds must be a whole number from 900 to 43200"},
      {"bogus", "credential_source 'Bogus' is not Environment, Ec2InstanceMetadata or EcsContainer"},
      {"orphan", "profile 'nope' (source_profile of 'orphan') not usable"}};
  for (auto& [profile, expected] : cases) {
    auto [c, err] = get_sync(*provider({{"AWS_CONFIG_FILE", config}}, profile));
    EXPECT_FALSE(c) << profile;
    EXPECT_NE(err.find(expected), std::string::npos) << profile << ": " << err;
  }
}

TEST_F(AwsSources, CredentialSourceEnvironmentAndInstanceMetadata) {
  start_mock();
  std::string config = dir.write("config",
                                 "[profile envrole]\nrole_arn = arn:aws:iam::123456789012:role/e\n"
                                 "credential_source = Environment\n"
                                 "[profile ec2role]\nrole_arn = arn:aws:iam::123456789012:role/i\n"
                                 "credential_source = Ec2InstanceMetadata\n");
  auto p = provider({{"AWS_CONFIG_FILE", config},
                     {"AWS_ACCESS_KEY_ID", "AKIDMOCK"},
                     {"AWS_SECRET_ACCESS_KEY", "mock-aws-secret"},
                     {"AWS_ENDPOINT_URL_STS", mock_url()}},
                    "envrole");
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id.rfind("ASIAMOCK", 0), 0u);
  EXPECT_EQ(p->source(), "assume_role:envrole");
  EXPECT_EQ(mock_stat("sts_calls"), 1);

  // Without the variables the configured source is an error, not a fall-through.
  auto [c2, err2] = get_sync(*provider({{"AWS_CONFIG_FILE", config}, {"AWS_ENDPOINT_URL_STS", mock_url()}}, "envrole"));
  EXPECT_FALSE(c2);
  EXPECT_NE(err2.find("credential_source Environment: environment (AWS_ACCESS_KEY_ID not set)"), std::string::npos)
      << err2;

  // The instance role's temporary keys sign the call (the mock knows them).
  auto p3 = provider({{"AWS_CONFIG_FILE", config},
                      {"AWS_EC2_METADATA_SERVICE_ENDPOINT", mock_url()},
                      {"AWS_ENDPOINT_URL_STS", mock_url()}},
                     "ec2role");
  auto [c3, err3] = get_sync(*p3);
  ASSERT_TRUE(c3) << err3;
  EXPECT_EQ(p3->source(), "assume_role:ec2role");
  EXPECT_EQ(mock_stat("imds_calls"), 1);
  EXPECT_EQ(mock_stat("sts_calls"), 2);
}

// ---- SSO ---------------------------------------------------------------------------------

// SHA-1 of the cache keys, as `printf %s <key> | sha1sum` prints them: the AWS CLI names
// its token cache files so.
constexpr const char* sha1_of_corp = "ee0bfd2552fbd840c02cc48b6e823320543c450f";
constexpr const char* sha1_of_start_url = "a51746d4aa793ae07b25e90c3a5db96fc7832bd7";  // https://corp.awsapps.com/start

struct AwsSso : AwsSources {
  std::string config;
  void SetUp() override {
    config = dir.write("config",
                       "[sso-session corp]\nsso_region = us-east-1\nsso_start_url = https://corp.awsapps.com/start\n"
                       "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Admin\n"
                       "[profile legacy]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n"
                       "sso_account_id = 123456789012\nsso_role_name = ReadOnly\n"
                       "[profile lost]\nsso_session = gone\nsso_account_id = 1\nsso_role_name = x\n");
  }
  void cache(const std::string& key_sha1, const std::string& token, const std::string& expires_at) {
    dir.write("home/.aws/sso/cache/" + key_sha1 + ".json",
              R"({"startUrl": "https://corp.awsapps.com/start", "region": "us-east-1", "accessToken": ")" + token +
                  R"(", "expiresAt": ")" + expires_at + R"("})");
  }
  env_map vars(const std::string& sso_endpoint) {
    return {{"AWS_CONFIG_FILE", config}, {"AWS_ENDPOINT_URL_SSO", sso_endpoint}};
  }
};

TEST_F(AwsSso, SessionFormReadsTheCachedTokenAndGetsRoleCredentials) {
  start_mock();
  cache(sha1_of_corp, "mock-sso-token", iso_in(3600s));
  auto p = provider(vars(mock_url() + "/_creds/sso"), "dev");
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id.rfind("ASIAMOCK", 0), 0u);
  EXPECT_FALSE(c->secret_access_key.empty());
  EXPECT_FALSE(c->session_token.empty());
  auto left = c->expiration - sys_clock::now();
  EXPECT_GT(left, 3500s);
  EXPECT_LT(left, 3700s);
  EXPECT_EQ(p->source(), "sso:dev");
}

TEST_F(AwsSso, LegacyFormUsesTheStartUrlAsCacheKey) {
  start_mock();
  // Old CLI versions wrote "UTC" instead of "Z".
  std::string exp = iso_in(3600s);
  cache(sha1_of_start_url, "mock-sso-token", exp.substr(0, exp.size() - 1) + "UTC");
  auto p = provider(vars(mock_url() + "/_creds/sso/"), "legacy");
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(p->source(), "sso:legacy");
  // The session form's cache file is a different one.
  auto [c2, err2] = get_sync(*provider(vars(mock_url() + "/_creds/sso"), "dev"));
  EXPECT_FALSE(c2);
  EXPECT_NE(err2.find(std::string("no cached SSO token (") + home() + "/.aws/sso/cache/" + sha1_of_corp +
                      ".json: not found); run `aws sso login --profile dev`"),
            std::string::npos)
      << err2;
}

TEST_F(AwsSso, ExpiredTokenSaysToLogIn) {
  cache(sha1_of_corp, "mock-sso-token", iso_in(-60s));
  // No request is made: the endpoint is a closed port.
  auto p = provider(vars("http://127.0.0.1:" + std::to_string(test::closed_port())), "dev");
  auto [c, err] = get_sync(*p);
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("profile 'dev' in " + config + ": the cached SSO token expired at "), std::string::npos) << err;
  EXPECT_NE(err.find("run `aws sso login --profile dev`"), std::string::npos) << err;
}

TEST_F(AwsSso, WrongTokenIsRejectedByThePortal) {
  start_mock();
  cache(sha1_of_corp, "stale-token", iso_in(3600s));
  auto [c, err] = get_sync(*provider(vars(mock_url() + "/_creds/sso"), "dev"));
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("SSO GetRoleCredentials at " + mock_url() +
                     ": HTTP 401 UnauthorizedException: Session token not found or invalid"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("aws sso login --profile dev"), std::string::npos) << err;
  EXPECT_EQ(err.find("stale-token"), std::string::npos) << err;
}

TEST_F(AwsSso, MissingSessionSectionIsNamed) {
  auto [c, err] = get_sync(*provider(vars("http://127.0.0.1:1"), "lost"));
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("sso_session 'gone' has no [sso-session gone] section in " + config), std::string::npos) << err;
}

// ---- IMDSv1 fallback ---------------------------------------------------------------------

TEST_F(AwsSources, ImdsFallsBackToV1WhenTheTokenIsRefused) {
  start_mock();
  auto p = provider({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", mock_url() + "/_creds/imds-v1"}});
  auto [c, err] = get_sync(*p);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->access_key_id.rfind("ASIAMOCK", 0), 0u);
  EXPECT_EQ(p->source(), "imds_v1");
  EXPECT_EQ(mock_stat("imds_calls"), 1);
  // The same service with IMDSv2 working: no fallback needed.
  auto p2 = provider({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", mock_url()}});
  ASSERT_TRUE(get_sync(*p2).first);
  EXPECT_EQ(p2->source(), "imds");
}

TEST_F(AwsSources, ImdsV1FallbackCanBeDisabled) {
  start_mock();
  auto p = provider({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", mock_url() + "/_creds/imds-v1"},
                     {"AWS_EC2_METADATA_V1_DISABLED", "true"}});
  auto [c, err] = get_sync(*p);
  EXPECT_FALSE(c);
  EXPECT_NE(err.find("(token request: HTTP 403; no IMDSv1 fallback: AWS_EC2_METADATA_V1_DISABLED)"), std::string::npos)
      << err;
  EXPECT_EQ(mock_stat("imds_calls"), 0);
}

}  // namespace
}  // namespace gw::credentials
