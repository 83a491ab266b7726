#pragma once
/// AWS Signature Version 4 (header signing), as botocore does it for non-S3 services,
/// and the matching verifier (used by the mock provider). Pure functions: the signing
/// time is a parameter, never read from a clock. Crypto by OpenSSL.
///
/// The steps are exposed separately so that each can be checked against the published
/// aws-c-auth test vectors (see docs / wire-specs section 3).

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gw/providers/aws.hpp"

namespace gw::providers {

using header_list = std::vector<std::pair<std::string, std::string>>;

/// Lower-case hex of SHA-256(data).
std::string sha256_hex(std::string_view data);
/// Raw 32-byte HMAC-SHA256(key, data).
std::string hmac_sha256(std::string_view key, std::string_view data);
/// Lower-case hex of arbitrary bytes.
std::string hex_encode(std::string_view bytes);
/// Percent-encodes every byte except the unreserved A-Za-z0-9 - _ . ~ (and '/' when
/// `keep_slash`), with upper-case hex digits, as SigV4 requires.
std::string uri_encode(std::string_view s, bool keep_slash);
/// Decodes %XY sequences (malformed ones are kept as they are); '+' stays '+'.
std::string uri_decode(std::string_view s);

/// "YYYYMMDDTHHMMSSZ" (UTC) for `t`.
std::string amz_date(std::chrono::system_clock::time_point t);

/// The canonical URI of a wire path: the path, already percent-encoded as it is sent,
/// encoded a second time with '/' kept (botocore `quote(path, safe='/~')` for every
/// service but S3). An empty path is "/".
std::string canonical_uri(std::string_view wire_path);
/// The canonical query of a raw query string (without '?'): each key and value decoded
/// then re-encoded with only unreserved characters kept, sorted by key then value,
/// "k=v" joined with '&'. Empty for an empty query.
std::string canonical_query(std::string_view raw_query);

/// A canonical request and the "SignedHeaders" value that goes with it.
struct canonical_request_parts {
  std::string request;         ///< METHOD\nURI\nQUERY\nHEADERS\n\nSIGNED\nPAYLOAD_HASH
  std::string signed_headers;  ///< "host;x-amz-date"
};
/// `headers` are the headers to sign (names lower-cased here; values trimmed and inner
/// runs of spaces collapsed; several fields of one name are joined with ','), in any
/// order. `payload_hash` is hex(SHA-256(body)).
canonical_request_parts canonical_request(std::string_view method, std::string_view wire_path,
                                          std::string_view raw_query, const header_list& headers,
                                          std::string_view payload_hash);
/// "<YYYYMMDD>/<region>/<service>/aws4_request".
std::string credential_scope(std::string_view date8, std::string_view region, std::string_view service);
/// "AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex(SHA-256(canonical request))>".
std::string string_to_sign(std::string_view amz_date_value, std::string_view scope,
                           std::string_view canonical_request_text);
/// The raw 32-byte signing key: HMAC chain over "AWS4"+secret, date, region, service,
/// "aws4_request".
std::string signing_key(std::string_view secret, std::string_view date8, std::string_view region,
                        std::string_view service);
/// hex(HMAC-SHA256(signing key, string to sign)).
std::string sigv4_signature(std::string_view key, std::string_view string_to_sign_text);

/// One request to sign.
struct sigv4_input {
  std::string_view method;  ///< "POST"
  std::string_view path;    ///< the path as sent on the wire (already percent-encoded)
  std::string_view query;   ///< the raw query as sent, without '?' (empty: none)
  /// Headers to sign, lower-case names; must include "host". x-amz-date and
  /// x-amz-security-token are added by sigv4_sign (do not pass them).
  header_list headers;
  std::string_view body;
};

/// Signs `in` at time `now`. Returns the headers to add to the request, in this order:
/// x-amz-date, x-amz-security-token (only with a session token), authorization.
header_list sigv4_sign(const sigv4_input& in, const aws_credentials& c, std::string_view region,
                       std::string_view service, std::chrono::system_clock::time_point now);

/// Why a signature was refused.
enum class sigv4_failure {
  none,
  missing_authorization,  ///< no Authorization header
  malformed_authorization,///< not "AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=.."
  unknown_key,            ///< the access key id is not known (or its credentials expired)
  bad_scope,              ///< scope not <date>/<region>/<service>/aws4_request, wrong service or date
  bad_date,               ///< x-amz-date missing, malformed, or outside the allowed skew
  token_mismatch,         ///< x-amz-security-token absent/different from the credentials' token
  signature_mismatch,     ///< the recomputed signature differs
};

/// The verdict of verify_sigv4.
struct sigv4_check {
  sigv4_failure failure = sigv4_failure::none;
  std::string reason;          ///< human-readable, empty when ok
  std::string access_key_id;   ///< from the Credential, when it could be read
  std::string region;          ///< from the scope, when it could be read
  bool ok() const noexcept { return failure == sigv4_failure::none; }
  explicit operator bool() const noexcept { return ok(); }
};

/// Looks up the credentials of an access key id (nullopt: unknown).
using aws_key_lookup = std::function<std::optional<aws_credentials>(std::string_view access_key_id)>;

/// Verifies the SigV4 Authorization header of a request (any region; `service` must
/// match the scope). `headers` are the request's fields in order, lower-case names; the
/// signed ones are taken from them. `wire_path` is the path as received (still
/// percent-encoded), `raw_query` the query as received without '?'. The date comes from
/// x-amz-date and must be within `allowed_skew` of `now`; credentials with a session
/// token require the same x-amz-security-token, and long-term keys require none.
sigv4_check verify_sigv4(std::string_view method, std::string_view wire_path, std::string_view raw_query,
                         const header_list& headers, std::string_view body, const aws_key_lookup& lookup,
                         std::chrono::system_clock::time_point now, std::chrono::seconds allowed_skew,
                         std::string_view service = "bedrock");

}  // namespace gw::providers
