// opa-authz: the OPA comparator for scopegate's side-by-side benchmark (issue 11). It serves Envoy's
// envoy.service.auth.v3.Authorization/Check the way OPA-Envoy does — builds OPA-Envoy's input document,
// evaluates a query prepared once at start, answers allow or deny with the policy's status, headers and
// body — from OPA's public Go API and the ext_authz protos. The Go module proxy refuses
// opa-envoy-plugin itself, so this is its equivalent built from the modules it is made of.
//
//	opa-authz --listen 127.0.0.1:0 --policy bench/opa/policy.rego --jwks dev-keys/jwks.json [--data data.json]
//
// Once listening it prints one JSON line to stdout: {"msg":"listening","grpc":"127.0.0.1:PORT"}.
// SIGTERM or SIGINT: health turns NOT_SERVING, in-flight checks finish, exit 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The rule OPA-Envoy users query by default is data.envoy.authz.allow; this policy answers with a result
// object (allowed, http_status, headers, body), which OPA-Envoy supports the same way.
const query = "data.envoy.authz.result"

func main() {
	listen := flag.String("listen", "127.0.0.1:9191", "gRPC address to serve on (port 0: a free port)")
	policyFile := flag.String("policy", "bench/opa/policy.rego", "Rego policy (v1 syntax)")
	jwksFile := flag.String("jwks", "", "JWKS file; its text becomes data.jwks (io.jwt.decode_verify's cert)")
	dataFile := flag.String("data", "", "optional JSON object merged into the policy's data")
	flag.Parse()

	if err := run(*listen, *policyFile, *jwksFile, *dataFile); err != nil {
		fmt.Fprintf(os.Stderr, "opa-authz: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, policyFile, jwksFile, dataFile string) error {
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", flag.Args())
	}
	prepared, err := prepare(policyFile, jwksFile, dataFile)
	if err != nil {
		return err
	}

	listener, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	authv3.RegisterAuthorizationServer(server, &authorizationServer{query: prepared})
	healthServer := health.NewServer()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthServer.SetServingStatus("envoy.service.auth.v3.Authorization", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(server, healthServer)

	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()

	line, _ := json.Marshal(struct {
		Msg  string `json:"msg"`
		GRPC string `json:"grpc"`
	}{"listening", listener.Addr().String()})
	if _, err := fmt.Fprintln(os.Stdout, string(line)); err != nil {
		server.Stop()
		return err
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-served:
		return err
	case <-signals:
	}
	healthServer.Shutdown()
	// In-flight checks finish; a client that keeps its stream open cannot hold the exit up for long.
	stopped := make(chan struct{})
	go func() { server.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		server.Stop()
	}
	return nil
}

// prepare compiles the policy and plans the query once, as OPA-Envoy does per policy revision; each Check
// then only evaluates.
func prepare(policyFile, jwksFile, dataFile string) (rego.PreparedEvalQuery, error) {
	var none rego.PreparedEvalQuery
	policy, err := os.ReadFile(policyFile)
	if err != nil {
		return none, err
	}
	data := map[string]any{}
	if dataFile != "" {
		raw, err := os.ReadFile(dataFile)
		if err != nil {
			return none, err
		}
		if err := json.Unmarshal(raw, &data); err != nil {
			return none, fmt.Errorf("%s: not a JSON object: %w", dataFile, err)
		}
	}
	if jwksFile == "" {
		return none, errors.New("--jwks is required (the JWKS the policy verifies tokens against)")
	}
	jwks, err := os.ReadFile(jwksFile)
	if err != nil {
		return none, err
	}
	if !json.Valid(jwks) {
		return none, fmt.Errorf("%s: not JSON", jwksFile)
	}
	// A string, not an object: io.jwt.decode_verify takes its cert constraint as JWKS text, which is also
	// what an OPA-Envoy policy usually hands it (http.send's raw_body from the IdP's JWKS endpoint).
	data["jwks"] = string(jwks)

	return rego.New(
		rego.Query(query),
		rego.Module(policyFile, string(policy)),
		rego.Store(inmem.NewFromObject(data)),
	).PrepareForEval(context.Background())
}
