# examples/inventory/policy.yaml in Rego, written the way OPA-Envoy users write such a policy: the token
# verified with io.jwt.decode_verify against the issuer's JWKS (data.jwks, the file's text), then lookups by
# key in plain data (scope → permissions, role → permissions, client → scopes and grant types, subject →
# roles and locations), one rule per route on method and parsed_path, and a result object (allowed,
# http_status, headers, body) for OPA-Envoy to turn into the CheckResponse. It is the OPA comparator's timed
# policy (bench/opa, issue 22): the same allow/deny and HTTP status as scopegate for every well-formed request.
#
# What it leaves out on purpose: scopegate's request-shape checks (the request target's odd encodings, the
# Authorization header's syntax, duplicate or look-alike JSON keys, malformed location codes, content-type
# parameters). OPA users rarely write them; bench/opa/request-shape.rego adds them for the equivalence check
# only, so the timed path is the one an OPA-Envoy user runs.
package envoy.authz

import input.attributes.request.http

issuer := "https://dev-issuer.scopegate.local/"

audience := "https://gateway.example.com"

# scopegate accepts an iat up to 30 s ahead (clock skew); io.jwt.decode_verify checks exp and nbf, not iat.
clock_tolerance_seconds := 30

scope_permissions := {
	"inventory.read": ["INV_TRANSACTION_READ"],
	"inventory.write": ["INV_TRANSACTION_CREATE", "INV_TRANSACTION_UPDATE"],
}

role_permissions := {
	"Inventory Transaction Manager": ["INV_TRANSACTION_CREATE", "INV_TRANSACTION_UPDATE"],
	"Inventory Data Reader": ["INV_TRANSACTION_READ"],
}

clients := {
	"inventory-sync": {"scopes": ["inventory.read", "inventory.write"], "grant_types": ["client_credentials"]},
	"stock-report": {"scopes": ["inventory.read"], "grant_types": ["client_credentials"]},
	"new-integration": {"scopes": ["inventory.read", "inventory.write"], "grant_types": ["client_credentials"]},
}

subjects := {
	"svc-inventory-sync": {
		"roles": ["Inventory Transaction Manager", "Inventory Data Reader"],
		"locations": ["WH01", "WH02", "EU-*"],
	},
	"svc-stock-report": {"roles": ["Inventory Data Reader"], "locations": ["*"]},
	"svc-new-integration": {"roles": ["Inventory Data Reader"], "locations": ["WH01"]},
}

# ---- the decision --------------------------------------------------------------------------------------

default allow := false

# Everything but the location: a valid token, a route, a listed client with its grant type, and every
# permission the route needs granted by both the token's scopes (those its client may use) and its roles.
permitted if {
	claims.gty in client.grant_types
	every permission in route.permissions {
		permission in scope_granted
		permission in role_granted
	}
}

allow if {
	permitted
	location_allowed
}

result := {
	"allowed": true,
	"headers": {"x-authz-subject": claims.sub, "x-authz-route": route.name},
} if allow

result := {
	"allowed": false,
	"http_status": 401,
	"headers": {"content-type": "application/json", "www-authenticate": `Bearer realm="inventory"`},
	"body": `{"error":"invalid_token"}`,
} if not claims

result := {
	"allowed": false,
	"http_status": 403,
	"headers": {"content-type": "application/json"},
	"body": `{"error":"access_denied"}`,
} if {
	claims
	not allow
}

# ---- the token -----------------------------------------------------------------------------------------

bearer_token := token if {
	[scheme, token] := split(http.headers.authorization, " ")
	lower(scheme) == "bearer"
}

claims := payload if {
	[valid, _, payload] := io.jwt.decode_verify(bearer_token, {"cert": data.jwks, "iss": issuer, "aud": audience})
	valid
	not payload.iat > (time.now_ns() / 1000000000) + clock_tolerance_seconds
	payload.sub != ""
}

# The client: client_id, else azp.
client_id := claims.client_id

client_id := claims.azp if not claims.client_id

client := clients[client_id]

# Scopes: a space-separated `scope`, or an `scp` array.
token_scopes contains scope if {
	some scope in split(claims.scope, " ")
	scope != ""
}

token_scopes contains scope if some scope in claims.scp

scope_granted contains permission if {
	some scope in token_scopes
	scope in client.scopes
	some permission in scope_permissions[scope]
}

roles contains role if some role in subjects[claims.sub].roles

roles contains role if some role in claims.roles

role_granted contains permission if {
	some role in roles
	some permission in role_permissions[role]
}

# ---- the route -----------------------------------------------------------------------------------------

route := {"name": "list_transactions", "permissions": ["INV_TRANSACTION_READ"]} if {
	http.method == "GET"
	input.parsed_path == ["api", "inventory", "transactions"]
}

route := {"name": "get_transaction", "permissions": ["INV_TRANSACTION_READ"]} if {
	http.method == "GET"
	input.parsed_path = ["api", "inventory", "transactions", _]
}

route := {
	"name": "create_transaction",
	"permissions": ["INV_TRANSACTION_CREATE", "INV_TRANSACTION_READ"],
	"location": input.parsed_body.location,
} if {
	http.method == "POST"
	input.parsed_path == ["api", "inventory", "transactions"]
}

route := {
	"name": "update_transaction",
	"permissions": ["INV_TRANSACTION_UPDATE", "INV_TRANSACTION_READ"],
	"location": input.parsed_body.location,
} if {
	http.method == "PUT"
	input.parsed_path = ["api", "inventory", "transactions", _]
}

route := {
	"name": "list_location_items",
	"permissions": ["INV_TRANSACTION_READ"],
	"location": location,
} if {
	http.method == "GET"
	input.parsed_path = ["api", "inventory", "locations", location, "items"]
}

# A POST or PUT without a location in its body has no route: denied, as scopegate denies it (location_missing).

# ---- locations -----------------------------------------------------------------------------------------

location_allowed if not "location" in object.keys(route)

location_allowed if {
	some pattern in locations
	location_matches(pattern, route.location)
}

locations contains location if some location in subjects[claims.sub].locations

locations contains location if some location in claims.locations

location_matches("*", _)

location_matches(pattern, location) if pattern == location

location_matches(pattern, location) if {
	endswith(pattern, "*")
	startswith(location, trim_suffix(pattern, "*"))
}
