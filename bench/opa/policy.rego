# examples/inventory/policy.yaml in Rego, for the OPA comparator (bench/opa, issue 11): the same allow/deny
# decisions and HTTP statuses scopegate makes, over the input document OPA-Envoy builds. The JWKS arrives
# as data.jwks (the file's text, which io.jwt.decode_verify takes as its cert constraint).
#
# Checks run in scopegate's order, first failure wins: the request's shape (400), the token (401), the
# route, grant type, scopes, roles (403), then the location the request names (403, or 400 when malformed).
# Every check is written as "what must hold", so anything undefined along the way denies, never allows.
package envoy.authz

issuer := "https://dev-issuer.scopegate.local/"

audience := "https://gateway.example.com"

algorithms := {"RS256", "ES256"}

token_types := {"jwt", "at+jwt", "application/at+jwt"}

clock_tolerance_seconds := 30

scopes := {
	"inventory.read": {"INV_TRANSACTION_READ"},
	"inventory.write": {"INV_TRANSACTION_CREATE", "INV_TRANSACTION_UPDATE"},
}

roles := {
	"Inventory Transaction Manager": {"INV_TRANSACTION_CREATE", "INV_TRANSACTION_UPDATE"},
	"Inventory Data Reader": {"INV_TRANSACTION_READ"},
}

clients := {
	"inventory-sync": {"scopes": {"inventory.read", "inventory.write"}, "grant_types": {"client_credentials"}},
	"stock-report": {"scopes": {"inventory.read"}, "grant_types": {"client_credentials"}},
	"new-integration": {"scopes": {"inventory.read", "inventory.write"}, "grant_types": {"client_credentials"}},
}

subjects := {
	"svc-inventory-sync": {
		"roles": {"Inventory Transaction Manager", "Inventory Data Reader"},
		"locations": {"WH01", "WH02", "EU-*"},
	},
	"svc-stock-report": {"roles": {"Inventory Data Reader"}, "locations": {"*"}},
	"svc-new-integration": {"roles": {"Inventory Data Reader"}, "locations": {"WH01"}},
}

# ---- the decision --------------------------------------------------------------------------------------

default reason := "internal_error"

reason := "request_malformed" if not request_well_formed

else := "token_missing" if not http_request.headers.authorization

else := "token_invalid" if not principal

else := "route_unknown" if not route

# The policy lists its clients, so a token whose client it does not list is refused (scopegate: client_unknown).
else := "client_unknown" if not client_entry

else := "grant_type_not_allowed" if not grant_type_allowed

else := "scope_missing" if not every_permission_in(permissions_of_token_scopes)

else := "client_scope_not_allowed" if not every_permission_in(permissions_of_effective_scopes)

else := "role_missing" if not every_permission_in(permissions_of_roles)

else := "body_unreadable" if not body_readable

else := "request_malformed" if not locations_well_formed

else := "location_missing" if not location_named

else := "location_denied" if not locations_allowed

else := "allowed"

http_status := {
	"request_malformed": 400,
	"token_missing": 401,
	"token_invalid": 401,
	"route_unknown": 403,
	"client_unknown": 403,
	"grant_type_not_allowed": 403,
	"scope_missing": 403,
	"client_scope_not_allowed": 403,
	"role_missing": 403,
	"body_unreadable": 403,
	"location_missing": 403,
	"location_denied": 403,
	"internal_error": 503,
}

# Identity headers for the upstream, as scopegate adds its x-scopegate-*; they overwrite client-sent values.
result := {
	"allowed": true,
	"headers": {"x-authz-subject": principal.sub, "x-authz-route": route.name},
} if reason == "allowed"

result := {
	"allowed": false,
	"http_status": http_status[reason],
	"headers": deny_headers,
	"body": json.marshal({"error": "access_denied", "reason": reason}),
} if reason != "allowed"

deny_headers := {"content-type": "application/json", "www-authenticate": `Bearer realm="inventory"`} if {
	http_status[reason] == 401
} else := {"content-type": "application/json"}

# ---- the request's shape (scopegate's request_malformed) ---------------------------------------------------

http_request := input.attributes.request.http

request_well_formed if {
	regex.match(`^[A-Z]{1,16}$`, http_request.method)
	path_well_formed
	not input.parsed_query.access_token
	authorization_well_formed
}

raw_path := split(http_request.path, "?")[0]

# Anything an upstream could read as another path: encoded slashes, backslashes, percent signs, ; ? # and
# controls, raw controls, spaces, backslashes and ;, a fragment, then empty and dot segments and controls
# once decoded.
path_well_formed if {
	startswith(raw_path, "/")
	not regex.match(`(?i)%(2f|5c|25|3b|3f|23|[01][0-9a-f]|7f)|[\\; \x00-\x1f\x7f]`, raw_path)
	not contains(http_request.path, "#")
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

authorization_well_formed if not http_request.headers.authorization

authorization_well_formed if bearer_token

# RFC 6750: "Bearer" in any case, one space, a token68. Two joined Authorization values have a comma.
bearer_token := token if {
	authorization := http_request.headers.authorization
	lower(substring(authorization, 0, 7)) == "bearer "
	token := substring(authorization, 7, -1)
	regex.match(`^[A-Za-z0-9._~+/-]+=*$`, token)
}

# ---- the token (scopegate's 401s) --------------------------------------------------------------------------

verified := [header, payload] if {
	[valid, header, payload] := io.jwt.decode_verify(bearer_token, {"cert": data.jwks, "iss": issuer, "aud": audience})
	valid
}

token_header := verified[0]

claims := verified[1]

now_seconds := time.now_ns() / 1000000000

# Undefined (so the token is invalid, 401) unless every claim scopegate reads has a shape it accepts.
principal := {
	"sub": claims.sub,
	"client": token_client,
	"grant_type": token_grant_type,
	"scopes": token_scopes,
	"roles": token_roles,
	"locations": token_locations,
} if {
	token_header.alg in algorithms
	type_accepted
	is_number(claims.exp)
	not claims.iat > now_seconds + clock_tolerance_seconds
	is_string(claims.sub)
	claims.sub != ""
	optional_id(token_client)
	optional_id(token_grant_type)
}

type_accepted if not "typ" in object.keys(token_header)

type_accepted if lower(token_header.typ) in token_types

# Each claim from the first name policy.yaml lists that is present and not null; null when none is.
token_client := claims.client_id if claims.client_id != null

else := claims.azp if claims.azp != null

else := null

token_grant_type := claims.gty if claims.gty != null

else := null

optional_id(value) if value == null

optional_id(value) if {
	is_string(value)
	value != ""
}

scope_claim := claims.scope if claims.scope != null

else := claims.scp if claims.scp != null

else := null

# Scopes: a space-separated string or an array of non-empty strings; any other shape leaves them undefined.
token_scopes := set() if scope_claim == null

token_scopes := {scope | some scope in split(scope_claim, " "); scope != ""} if is_string(scope_claim)

token_scopes := string_set(scope_claim) if is_array(scope_claim)

# Roles and locations: one string or an array of them (a role name may hold spaces).
token_roles := set() if object.get(claims, "roles", null) == null

token_roles := string_set(claims.roles) if object.get(claims, "roles", null) != null

token_locations := set() if object.get(claims, "locations", null) == null

token_locations := string_set(claims.locations) if object.get(claims, "locations", null) != null

string_set(value) := {value} if {
	is_string(value)
	value != ""
}

string_set(value) := {item | some item in value} if {
	is_array(value)
	every item in value {
		is_string(item)
		item != ""
	}
}

# ---- the route ---------------------------------------------------------------------------------------------

# One rule per route of policy.yaml, matched on method and path segments the way OPA-Envoy policies usually
# are ("{id}" is any one segment). No two of them can match the same request, so "the first route that
# matches" and "the route that matches" are the same here.
route := {"name": "list_transactions", "permissions": {"INV_TRANSACTION_READ"}} if {
	http_request.method == "GET"
	input.parsed_path == ["api", "inventory", "transactions"]
}

route := {"name": "get_transaction", "permissions": {"INV_TRANSACTION_READ"}} if {
	http_request.method == "GET"
	input.parsed_path = ["api", "inventory", "transactions", _]
}

route := {
	"name": "create_transaction",
	"permissions": {"INV_TRANSACTION_CREATE", "INV_TRANSACTION_READ"},
	"location_in_body": "location",
} if {
	http_request.method == "POST"
	input.parsed_path == ["api", "inventory", "transactions"]
}

route := {
	"name": "update_transaction",
	"permissions": {"INV_TRANSACTION_UPDATE", "INV_TRANSACTION_READ"},
	"location_in_body": "location",
} if {
	http_request.method == "PUT"
	input.parsed_path = ["api", "inventory", "transactions", _]
}

route := {
	"name": "list_location_items",
	"permissions": {"INV_TRANSACTION_READ"},
	"location_in_path": location,
} if {
	http_request.method == "GET"
	input.parsed_path = ["api", "inventory", "locations", location, "items"]
}

# ---- grant type, scopes, roles -----------------------------------------------------------------------------

client_entry := clients[principal.client]

grant_type_allowed if not client_entry

grant_type_allowed if not client_entry.grant_types

grant_type_allowed if principal.grant_type in client_entry.grant_types

# Token scopes narrowed to what the client may use, when the policy lists the client.
effective_scopes := principal.scopes & client_entry.scopes if client_entry

else := principal.scopes

permissions_of_token_scopes := {permission | some scope in principal.scopes; some permission in scopes[scope]}

permissions_of_effective_scopes := {permission | some scope in effective_scopes; some permission in scopes[scope]}

subject_roles := principal.roles | subjects[principal.sub].roles if subjects[principal.sub]

else := principal.roles

permissions_of_roles := {permission | some role in subject_roles; some permission in roles[role]}

every_permission_in(granted) if count(route.permissions - granted) == 0

# ---- locations ---------------------------------------------------------------------------------------------

body_readable if not route.location_in_body

body_readable if {
	field := route.location_in_body
	not input.truncated_body
	body_text != ""
	json_content_type
	is_object(request_json)

	# OPA's JSON parsers keep the last of two equal keys, scopegate refuses the body: find it in the text
	# (a nested object naming the field too is refused as well: stricter than scopegate, never looser).
	count(regex.find_n(sprintf(`"%s"\s*:`, [field]), body_text, 2)) < 2
	not lookalike_key(field)
	location_value_ok(object.get(request_json, field, null))
}

body_text := http_request.body if http_request.body != ""

else := base64.decode(http_request.raw_body) if http_request.raw_body

else := ""

# application/json or application/<anything>+json; a charset, when given, must be UTF-8 (as scopegate reads it).
json_content_type if {
	parts := split(lower(http_request.headers["content-type"]), ";")
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

# OPA-Envoy parses application/json bodies into parsed_body; other JSON media types are parsed here.
request_json := input.parsed_body if "parsed_body" in object.keys(input)

else := json.unmarshal(body_text)

lookalike_key(field) if {
	some key, _ in request_json
	key != field
	lower(key) == lower(field)
}

location_value_ok(value) if value == null

location_value_ok(value) if is_string(value)

location_candidates := [route.location_in_path] if route.location_in_path

else := [request_json[route.location_in_body]] if route.location_in_body

else := []

location_codes := {code | some code in location_candidates; is_string(code); code != ""}

# "*" is a wildcard only in a grant; in a request it is refused, as are odd characters.
locations_well_formed if {
	every code in location_codes {
		regex.match(`^[A-Za-z0-9._:-]{1,128}$`, code)
	}
}

location_named if {
	not route.location_in_path
	not route.location_in_body
}

location_named if count(location_codes) > 0

locations_allowed if {
	every code in location_codes {
		location_granted(code)
	}
}

location_granted(code) if {
	some pattern in subjects[principal.sub].locations
	pattern_matches(pattern, code)
}

location_granted(code) if {
	some pattern in principal.locations
	pattern_matches(pattern, code)
}

pattern_matches("*", _)

pattern_matches(pattern, code) if {
	not contains(pattern, "*")
	pattern == code
}

pattern_matches(pattern, code) if {
	prefix := trim_suffix(pattern, "*")
	prefix != pattern
	prefix != ""
	not contains(prefix, "*")
	startswith(code, prefix)
}
