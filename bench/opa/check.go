// One Check: input document → one evaluation of the prepared query → CheckResponse, read the way OPA-Envoy
// reads a decision: a boolean, or an object with allowed, http_status, headers, body and
// request_headers_to_remove. Undefined means deny.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type authorizationServer struct {
	authv3.UnimplementedAuthorizationServer
	query   rego.PreparedEvalQuery
	caches  evalCaches
	answers *answerCounts
}

// evalCaches: OPA's inter-query caches, shared by every evaluation (io.jwt.decode_verify reads the value
// cache's io_jwt bucket, http.send the other).
type evalCaches struct {
	builtin cache.InterQueryCache
	value   cache.InterQueryValueCache
}

// decision is the policy's answer in OPA-Envoy's terms.
type decision struct {
	allowed         bool
	httpStatus      int
	headers         map[string][]string
	body            string
	headersToRemove []string
}

func (s *authorizationServer) Check(ctx context.Context, request *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	response, err := s.check(ctx, request)
	s.answers.count(ctx, response, err)
	return response, err
}

// check: as OPA-Envoy, an input it cannot build or a policy that fails is a gRPC error (Envoy then answers
// with its status_on_error, 403 unless configured otherwise).
func (s *authorizationServer) check(ctx context.Context, request *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	input, err := inputFor(request)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "building the input document: %v", err)
	}
	value, err := ast.InterfaceToValue(input)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "converting the input document: %v", err)
	}
	results, err := s.query.Eval(ctx,
		rego.EvalParsedInput(value),
		rego.EvalMetrics(metrics.New()),
		rego.EvalInterQueryBuiltinCache(s.caches.builtin),
		rego.EvalInterQueryBuiltinValueCache(s.caches.value),
	)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "evaluating the policy: %v", err)
	}
	answer := decision{}
	if len(results) > 0 && len(results[0].Expressions) > 0 {
		if answer, err = readDecision(results[0].Expressions[0].Value); err != nil {
			return nil, status.Errorf(codes.Internal, "reading the policy's decision: %v", err)
		}
	}
	return responseFor(answer), nil
}

func readDecision(result any) (decision, error) {
	switch value := result.(type) {
	case bool:
		return decision{allowed: value}, nil
	case map[string]any:
		answer := decision{}
		allowed, ok := value["allowed"].(bool)
		if !ok {
			return answer, errors.New(`the result object has no boolean "allowed"`)
		}
		answer.allowed = allowed
		if raw, present := value["http_status"]; present {
			number, ok := raw.(interface{ Int64() (int64, error) })
			if !ok {
				return answer, errors.New(`"http_status" is not a number`)
			}
			code, err := number.Int64()
			if err != nil || code < 100 || code > 599 {
				return answer, fmt.Errorf(`"http_status" %v is not an HTTP status`, raw)
			}
			answer.httpStatus = int(code)
		}
		if raw, present := value["body"]; present {
			body, ok := raw.(string)
			if !ok {
				return answer, errors.New(`"body" is not a string`)
			}
			answer.body = body
		}
		headers, err := readHeaders(value["headers"])
		if err != nil {
			return answer, err
		}
		answer.headers = headers
		if raw, present := value["request_headers_to_remove"]; present {
			list, ok := raw.([]any)
			if !ok {
				return answer, errors.New(`"request_headers_to_remove" is not a list`)
			}
			for _, item := range list {
				name, ok := item.(string)
				if !ok {
					return answer, errors.New(`"request_headers_to_remove" holds a non-string`)
				}
				answer.headersToRemove = append(answer.headersToRemove, name)
			}
		}
		return answer, nil
	default:
		return decision{}, fmt.Errorf("the result is a %T, not a boolean or an object", result)
	}
}

// readHeaders: an object of header name → string, or → list of strings (one header line each).
func readHeaders(raw any) (map[string][]string, error) {
	if raw == nil {
		return nil, nil
	}
	object, ok := raw.(map[string]any)
	if !ok {
		return nil, errors.New(`"headers" is not an object`)
	}
	headers := make(map[string][]string, len(object))
	for name, value := range object {
		switch v := value.(type) {
		case string:
			headers[name] = []string{v}
		case []any:
			for _, item := range v {
				text, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("header %q holds a non-string", name)
				}
				headers[name] = append(headers[name], text)
			}
		default:
			return nil, fmt.Errorf("header %q is not a string or a list of strings", name)
		}
	}
	return headers, nil
}

func responseFor(answer decision) *authv3.CheckResponse {
	headers := headerOptions(answer.headers)
	if answer.allowed {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(code.Code_OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         headers,
				HeadersToRemove: answer.headersToRemove,
			}},
		}
	}
	httpStatus := answer.httpStatus
	if httpStatus == 0 {
		httpStatus = http.StatusForbidden
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(httpStatus)},
			Headers: headers,
			Body:    answer.body,
		}},
	}
}

// headerOptions in name order, so the same decision always encodes to the same bytes.
func headerOptions(headers map[string][]string) []*corev3.HeaderValueOption {
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	sort.Strings(names)
	var options []*corev3.HeaderValueOption
	for _, name := range names {
		for _, value := range headers[name] {
			options = append(options, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: name, Value: value}})
		}
	}
	return options
}
