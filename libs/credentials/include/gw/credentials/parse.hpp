#pragma once
/// Small pure helpers the credential providers use, public for tests: form encoding,
/// ISO 8601 timestamps, a tiny XML tag extractor, the AWS shared-file INI dialect, the
/// command-line splitting of credential_process.

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gw::credentials {

/// Percent-encodes for application/x-www-form-urlencoded (and URL components): every
/// byte but the RFC 3986 unreserved set A-Z a-z 0-9 - _ . ~ becomes %XX.
std::string form_encode(std::string_view s);

/// Parses "2024-05-01T12:00:00Z", with optional fractional seconds and a "Z", "+hh:mm",
/// "-hh:mm" or "+hhmm" offset (no offset = UTC). nullopt on anything else, and for
/// years outside 1900..2200 (system_clock's nanosecond range ends in 2262).
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s);
/// Formats as "2024-05-01T12:00:00Z" (for logs).
std::string format_iso8601(std::chrono::system_clock::time_point t);

/// The text of the first <tag>...</tag> element (also with attributes or a namespace
/// prefix, e.g. <sts:tag a="b">) inside `xml`, with the five predefined entities and
/// numeric character references decoded. nullopt when absent. Not a validating parser:
/// enough for the flat responses of AWS Query APIs.
std::optional<std::string> xml_tag(std::string_view xml, std::string_view tag);

/// An INI file as AWS shared credentials/config files use it: "[section]" headers,
/// "key = value" (or "key: value") pairs, whole-line comments starting with # or ;,
/// inline comments after whitespace ("value  # note"), keys lower-cased, section names
/// and values trimmed; indented lines continue the previous value (nested settings
/// such as "s3 =\n  max_concurrent_requests = 10"). A repeated section or key: the
/// last value wins. Never throws; junk lines are ignored.
using ini_section = std::map<std::string, std::string, std::less<>>;
using ini_file = std::map<std::string, ini_section, std::less<>>;
ini_file parse_ini(std::string_view text);

/// The profile's section of an AWS *config* file: "[profile name]", or "[default]" /
/// "[profile default]" for "default". nullptr when absent.
const ini_section* config_profile(const ini_file& f, std::string_view profile);

/// The "[sso-session name]" section of an AWS config file; nullptr when absent.
const ini_section* config_sso_session(const ini_file& f, std::string_view name);

/// Splits a command line into words as a POSIX shell does, and as the AWS CLI does for
/// credential_process (Python's shlex.split), without any expansion: unquoted whitespace
/// separates words; '...' is literal; inside "..." a backslash escapes only " \ $ `
/// and a newline; outside quotes a backslash escapes the next character. False (with
/// `err` set) on an unterminated quote or a trailing backslash.
bool split_command_line(std::string_view s, std::vector<std::string>& out, std::string& err);

/// Reads a small regular file. False (with `err` set: "not found", "too large", ...)
/// when it does not exist, cannot be read or is larger than `limit` bytes.
bool read_small_file(const std::string& path, std::size_t limit, std::string& out, std::string& err);

}  // namespace gw::credentials
