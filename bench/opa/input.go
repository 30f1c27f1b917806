// The input document OPA-Envoy builds from a CheckRequest, following its envoyauth package (request.go): the
// whole CheckRequest as protojson (protobuf's JSON names: lowerCamelCase, e.g. "attributes.request.http",
// "contextExtensions"), decoded by OPA's util.UnmarshalJSON (numbers kept as json.Number), plus "version", "parsed_path",
// "parsed_query", "parsed_body" and "truncated_body". The JSON round trip (protojson, then a Go map, then an
// OPA value) is deliberate: it is the work OPA-Envoy does for every Check, and the benchmark measures it.
package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/encoding/protojson"
)

var v3Version = map[string]any{"ext_authz": "v3", "encoding": "protojson"}

// inputFor fails where OPA-Envoy fails (a path url.Parse refuses, a JSON body that does not decode): the
// Check then ends in a gRPC error, which Envoy turns into its status_on_error (403 by default).
func inputFor(request *authv3.CheckRequest) (map[string]any, error) {
	raw, err := protojson.Marshal(request)
	if err != nil {
		return nil, err
	}
	var input map[string]any
	if err := util.UnmarshalJSON(raw, &input); err != nil {
		return nil, err
	}
	input["version"] = v3Version

	http := request.GetAttributes().GetRequest().GetHttp()
	parsedPath, parsedQuery, err := pathAndQuery(http.GetPath())
	if err != nil {
		return nil, fmt.Errorf("parsing the path: %w", err)
	}
	input["parsed_path"] = parsedPath
	input["parsed_query"] = parsedQuery

	body, truncated, err := parsedBody(http.GetHeaders(), http.GetBody(), http.GetRawBody())
	if err != nil {
		return nil, fmt.Errorf("parsing the body: %w", err)
	}
	input["parsed_body"] = body
	input["truncated_body"] = truncated
	return input, nil
}

// pathAndQuery: url.Parse's path with every leading "/" trimmed, split on "/" ("/api/x" → ["api", "x"]),
// and every query parameter's values in order.
func pathAndQuery(path string) ([]any, map[string]any, error) {
	parsed, err := url.Parse(path)
	if err != nil {
		return nil, nil, err
	}
	parts := strings.Split(strings.TrimLeft(parsed.Path, "/"), "/")
	segments := make([]any, len(parts))
	for i, part := range parts {
		segments[i] = part
	}
	query := map[string]any{}
	for key, values := range parsed.Query() {
		items := make([]any, len(values))
		for i, value := range values {
			items[i] = value
		}
		query[key] = items
	}
	return segments, query, nil
}

// parsedBody: a body whose content-type contains "application/json", from body or else raw_body; truncated
// (and not parsed) when content-length says more was sent than arrived. Other content types are not parsed
// here (OPA-Envoy also reads form and gRPC bodies; the bench sends none).
func parsedBody(headers map[string]string, body string, rawBody []byte) (any, bool, error) {
	if !strings.Contains(headers["content-type"], "application/json") {
		return nil, false, nil
	}
	if body == "" {
		if len(rawBody) == 0 {
			return nil, false, nil
		}
		body = string(rawBody)
	}
	if length, present := headers["content-length"]; present {
		declared, err := strconv.ParseInt(length, 10, 64)
		if err != nil {
			return nil, false, err
		}
		if declared != -1 && declared > int64(len(body)) {
			return nil, true, nil
		}
	}
	var data any
	if err := util.UnmarshalJSON([]byte(body), &data); err != nil {
		return nil, false, err
	}
	return data, false, nil
}
