# scopegate's request-shape checks in Rego, for the equivalence check only (bench/opa/equivalence.js): with
# these, the comparator answers every case of bench/opa/cases.json as scopegate does, 400s and body checks
# included. The timed comparator runs bench/opa/policy.rego alone (data.envoy.authz.result); this module
# wraps that decision (data.envoy.authz.shape.result) in scopegate's order: the request's shape first (400),
# then the policy's token and permission checks (401, 403), then the body (403) and the location's syntax
# (400), then the policy's location check.
package envoy.authz.shape

import data.envoy.authz
import input.attributes.request.http

result := deny(400) if not request_well_formed

else := authz.result if not authz.permitted

else := deny(403) if not body_readable

else := deny(400) if not location_well_formed

else := authz.result

deny(status) := {
	"allowed": false,
	"http_status": status,
	"headers": {"content-type": "application/json"},
	"body": `{"error":"access_denied"}`,
}

# ---- the request target and the Authorization header ---------------------------------------------------

request_well_formed if {
	regex.match(`^[A-Z]{1,16}$`, http.method)
	path_well_formed
	not input.parsed_query.access_token
	authorization_well_formed
}

raw_path := split(http.path, "?")[0]

# Anything an upstream could read as another path: encoded slashes, backslashes, percent signs, ; ? # and
# controls, raw controls, spaces, backslashes and ;, a fragment, then empty and dot segments and controls
# once decoded.
path_well_formed if {
	startswith(raw_path, "/")
	not startswith(raw_path, "//")
	not regex.match(`(?i)%(2f|5c|25|3b|3f|23|[01][0-9a-f]|7f)|[\\; \x00-\x1f\x7f]`, raw_path)
	not contains(http.path, "#")
	not regex.match(`[\x00-\x1f\x7f-\x9f]`, concat("/", input.parsed_path))
	not odd_segment
}

odd_segment if {
	some segment in input.parsed_path
	segment in {".", ".."}
}

# "/" alone is a well-formed path (with no route).
odd_segment if {
	input.parsed_path != [""]
	"" in input.parsed_path
}

authorization_well_formed if not http.headers.authorization

# RFC 6750: "Bearer" in any case, one space, a token68. Two joined Authorization values have a comma.
authorization_well_formed if {
	authorization := http.headers.authorization
	lower(substring(authorization, 0, 7)) == "bearer "
	regex.match(`^[A-Za-z0-9._~+/-]+=*$`, substring(authorization, 7, -1))
}

# ---- the body ------------------------------------------------------------------------------------------

location_in_body if http.method in {"POST", "PUT"}

body_readable if not location_in_body

body_readable if {
	location_in_body
	not input.truncated_body
	body_text != ""
	json_content_type
	is_object(request_json)

	# OPA's JSON parser keeps the last of two equal keys, scopegate refuses the body: find it in the text
	# (a nested object naming the field too is refused as well: stricter than scopegate, never looser).
	count(regex.find_n(`"location"\s*:`, body_text, 2)) < 2
	not lookalike_key
	location_value_ok(object.get(request_json, "location", null))
}

body_text := http.body if http.body != ""

else := base64.decode(http.rawBody) if http.rawBody

else := ""

# application/json or application/<anything>+json; a charset, when given, must be UTF-8 (as scopegate reads it).
json_content_type if {
	parts := split(lower(http.headers["content-type"]), ";")
	regex.match(`^application/(json|[a-z0-9!#$&^_.+-]+\+json)$`, trim_space(parts[0]))
	every parameter in array.slice(parts, 1, count(parts)) {
		charset_utf8(parameter)
	}
}

charset_utf8(parameter) if not regex.match(`^\s*charset\s*=`, parameter)

charset_utf8(parameter) if {
	[_, value] := regex.find_all_string_submatch_n(`^\s*charset\s*=(.*)$`, parameter, 1)[0]
	trim(trim_space(value), `"`) in {"utf-8", "utf8"}
}

# OPA-Envoy parses only content types containing application/json; other JSON media types are parsed here.
request_json := input.parsed_body if input.parsed_body != null

else := json.unmarshal(body_text)

lookalike_key if {
	some key, _ in request_json
	key != "location"
	lower(key) == "location"
}

location_value_ok(value) if value == null

location_value_ok(value) if is_string(value)

# ---- the location's syntax -----------------------------------------------------------------------------

# "*" is a wildcard only in a grant; in a request it is refused, as are odd characters.
location_well_formed if not authz.route.location

location_well_formed if regex.match(`^[A-Za-z0-9._:-]{1,128}$`, authz.route.location)
