// The input document OPA-Envoy builds from a CheckRequest, rebuilt from its documented shape: the request's
// attributes as protojson with the protos' own snake_case names, plus parsed_path, parsed_query,
// parsed_body, truncated_body and version. The JSON round trip (protojson, then a Go map, then an OPA
// value) is deliberate: it is the work OPA-Envoy does for every Check, and the benchmark measures it.
package main

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// Envoy adds this header, with "true", to a body it cut at max_request_bytes (allow_partial_message).
const partialBodyHeader = "x-envoy-auth-partial-body"

var attributesJSON = protojson.MarshalOptions{UseProtoNames: true}

func inputFor(request *authv3.CheckRequest) (map[string]any, error) {
	raw, err := attributesJSON.Marshal(request.GetAttributes())
	if err != nil {
		return nil, err
	}
	var attributes map[string]any
	if err := json.Unmarshal(raw, &attributes); err != nil {
		return nil, err
	}

	http := request.GetAttributes().GetRequest().GetHttp()
	truncated := http.GetHeaders()[partialBodyHeader] == "true"
	input := map[string]any{
		"attributes":     attributes,
		"truncated_body": truncated,
		"version":        map[string]any{"ext_authz": "v3", "encoding": "protojson"},
	}
	path, query, _ := strings.Cut(http.GetPath(), "?")
	// A path whose segments do not decode has no parsed_path; the policy refuses such a request.
	if segments, ok := parsedPath(path); ok {
		input["parsed_path"] = segments
	}
	input["parsed_query"] = parsedQuery(query)
	if body, ok := parsedBody(http.GetHeaders()["content-type"], http.GetBody(), http.GetRawBody(), truncated); ok {
		input["parsed_body"] = body
	}
	return input, nil
}

// parsedPath: the path without its query, split on "/" after the leading one, each segment
// percent-decoded ("/api/x" → ["api", "x"]; "/" → [""]). Empty segments are kept so the policy sees "//".
func parsedPath(path string) ([]any, bool) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	segments := make([]any, len(parts))
	for i, part := range parts {
		decoded, err := url.PathUnescape(part)
		if err != nil {
			return nil, false
		}
		segments[i] = decoded
	}
	return segments, true
}

// parsedQuery: every parameter's values, in order ("a=1&a=2" → {"a": ["1", "2"]}); pairs that do not
// decode are left out.
func parsedQuery(query string) map[string]any {
	values, _ := url.ParseQuery(query)
	parsed := make(map[string]any, len(values))
	for key, list := range values {
		items := make([]any, len(list))
		for i, value := range list {
			items[i] = value
		}
		parsed[key] = items
	}
	return parsed
}

// parsedBody: a JSON body (content-type application/json) from body, or from raw_body when Envoy packs it
// as bytes. A body Envoy cut is not parsed (it would not be JSON); nor is one that is not valid JSON, which
// the policy then denies as unreadable.
func parsedBody(contentType, body string, rawBody []byte, truncated bool) (any, bool) {
	if truncated || !strings.Contains(strings.ToLower(contentType), "application/json") {
		return nil, false
	}
	data := rawBody
	if body != "" {
		data = []byte(body)
	}
	if len(data) == 0 {
		return nil, false
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber()
	var parsed any
	if err := decoder.Decode(&parsed); err != nil || decoder.More() {
		return nil, false
	}
	return parsed, true
}
