// opa-authz: the OPA comparator for scopegate's side-by-side benchmark (issues 11 and 22). It serves Envoy's
// envoy.service.auth.v3.Authorization/Check the way OPA-Envoy does — builds OPA-Envoy's input document,
// evaluates a query prepared once at start (with OPA's inter-query builtin caches, as OPA-Envoy passes them),
// answers allow or deny with the policy's status, headers and body — from OPA's public Go API and the
// ext_authz protos. The Go module proxy refuses opa-envoy-plugin itself, so this is its equivalent built from
// the modules it is made of.
//
//	opa-authz --listen 127.0.0.1:0 --policy bench/opa/policy.rego --jwks dev-keys/jwks.json
//	          [--policy more.rego ...] [--query data.envoy.authz.result] [--jwt-cache 10000]
//	          [--data data.json] [--admin 127.0.0.1:0]
//
// --jwt-cache N turns on OPA's io_jwt cache of verified tokens (OPA's config
// caches.inter_query_builtin_value_cache.named.io_jwt.max_num_entries: N); 0, the default, leaves it off, as
// OPA and OPA-Envoy do unless configured. --admin serves GET /answers: how many Checks ended in each answer
// ("allow 200", "deny 403", "error", ...), so a load generator's run can be checked, not only counted.
//
// Once listening it prints one JSON line to stdout: {"msg":"listening","grpc":"127.0.0.1:PORT"} (plus
// "admin":"http://127.0.0.1:PORT" with --admin). SIGTERM or SIGINT: health turns NOT_SERVING, in-flight checks
// finish, exit 0.
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
	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The rule OPA-Envoy users query by default is data.envoy.authz.allow; bench/opa/policy.rego answers with a
// result object (allowed, http_status, headers, body), which OPA-Envoy supports the same way.
const defaultQuery = "data.envoy.authz.result"

type options struct {
	listen, admin, query, jwksFile, dataFile string
	policyFiles                              []string
	jwtCacheEntries                          int
}

func main() {
	o := options{}
	flag.StringVar(&o.listen, "listen", "127.0.0.1:9191", "gRPC address to serve on (port 0: a free port)")
	flag.Func("policy", "Rego module (v1 syntax); repeat for more modules (default bench/opa/policy.rego)",
		func(file string) error { o.policyFiles = append(o.policyFiles, file); return nil })
	flag.StringVar(&o.query, "query", defaultQuery, "the decision to evaluate for each Check")
	flag.StringVar(&o.jwksFile, "jwks", "", "JWKS file; its text becomes data.jwks (io.jwt.decode_verify's cert)")
	flag.StringVar(&o.dataFile, "data", "", "optional JSON object merged into the policy's data")
	flag.IntVar(&o.jwtCacheEntries, "jwt-cache", 0, "entries of OPA's io_jwt verified-token cache (0: off, OPA's default)")
	flag.StringVar(&o.admin, "admin", "", "optional HTTP address serving GET /answers (port 0: a free port)")
	flag.Parse()
	if len(o.policyFiles) == 0 {
		o.policyFiles = []string{"bench/opa/policy.rego"}
	}

	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "opa-authz: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", flag.Args())
	}
	if o.jwtCacheEntries < 0 {
		return fmt.Errorf("--jwt-cache %d: not a number of entries", o.jwtCacheEntries)
	}
	prepared, err := prepare(o)
	if err != nil {
		return err
	}
	caches, err := interQueryCaches(o.jwtCacheEntries)
	if err != nil {
		return err
	}
	checker := &authorizationServer{query: prepared, caches: caches, answers: newAnswerCounts()}

	listener, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	authv3.RegisterAuthorizationServer(server, checker)
	healthServer := health.NewServer()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthServer.SetServingStatus("envoy.service.auth.v3.Authorization", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(server, healthServer)

	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()

	adminURL := ""
	if o.admin != "" {
		if adminURL, err = serveAnswers(o.admin, checker.answers); err != nil {
			server.Stop()
			return err
		}
	}
	line, _ := json.Marshal(struct {
		Msg   string `json:"msg"`
		GRPC  string `json:"grpc"`
		Admin string `json:"admin,omitempty"`
	}{"listening", listener.Addr().String(), adminURL})
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
func prepare(o options) (rego.PreparedEvalQuery, error) {
	var none rego.PreparedEvalQuery
	settings := []func(*rego.Rego){rego.Query(o.query)}
	for _, file := range o.policyFiles {
		policy, err := os.ReadFile(file)
		if err != nil {
			return none, err
		}
		settings = append(settings, rego.Module(file, string(policy)))
	}
	data := map[string]any{}
	if o.dataFile != "" {
		raw, err := os.ReadFile(o.dataFile)
		if err != nil {
			return none, err
		}
		if err := json.Unmarshal(raw, &data); err != nil {
			return none, fmt.Errorf("%s: not a JSON object: %w", o.dataFile, err)
		}
	}
	if o.jwksFile == "" {
		return none, errors.New("--jwks is required (the JWKS the policy verifies tokens against)")
	}
	jwks, err := os.ReadFile(o.jwksFile)
	if err != nil {
		return none, err
	}
	if !json.Valid(jwks) {
		return none, fmt.Errorf("%s: not JSON", o.jwksFile)
	}
	// A string, not an object: io.jwt.decode_verify takes its cert constraint as JWKS text, which is also
	// what an OPA-Envoy policy usually hands it (http.send's raw_body from the IdP's JWKS endpoint).
	data["jwks"] = string(jwks)

	settings = append(settings, rego.Store(inmem.NewFromObject(data)))
	return rego.New(settings...).PrepareForEval(context.Background())
}

// interQueryCaches: the two caches OPA-Envoy hands every evaluation, configured as OPA's `caches` section
// would configure them; only io_jwt's size is set here, so everything else keeps OPA's defaults.
func interQueryCaches(jwtCacheEntries int) (evalCaches, error) {
	raw := []byte(`{}`)
	if jwtCacheEntries > 0 {
		raw = fmt.Appendf(nil, `{"inter_query_builtin_value_cache":{"named":{"io_jwt":{"max_num_entries":%d}}}}`, jwtCacheEntries)
	}
	config, err := cache.ParseCachingConfig(raw)
	if err != nil {
		return evalCaches{}, err
	}
	ctx := context.Background()
	return evalCaches{
		builtin: cache.NewInterQueryCacheWithContext(ctx, config),
		value:   cache.NewInterQueryValueCache(ctx, config),
	}, nil
}
