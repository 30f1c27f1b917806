// How many Checks ended in each answer ("allow 200", "deny 403", "deny 401", "error", and "cancelled" for a
// call its client gave up on, as a load generator does with the calls in flight when it stops), served as JSON
// on GET /answers, so bench/compare.js can hold a load generator's run to the split the mix must give.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

type answerCounts struct {
	mu     sync.Mutex
	counts map[string]int64
}

func newAnswerCounts() *answerCounts { return &answerCounts{counts: map[string]int64{}} }

func (a *answerCounts) count(ctx context.Context, response *authv3.CheckResponse, err error) {
	key := "error"
	if ctx.Err() != nil {
		key = "cancelled"
	} else if err == nil {
		if denied := response.GetDeniedResponse(); denied != nil {
			key = fmt.Sprintf("deny %d", denied.GetStatus().GetCode())
		} else {
			key = "allow 200"
		}
	}
	a.mu.Lock()
	a.counts[key]++
	a.mu.Unlock()
}

func (a *answerCounts) snapshot() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	copied := make(map[string]int64, len(a.counts))
	for key, n := range a.counts {
		copied[key] = n
	}
	return copied
}

// serveAnswers listens on `address` and returns its base URL.
func serveAnswers(address string, answers *answerCounts) (string, error) {
	listener, err := net.Listen("tcp", address)
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /answers", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(answers.snapshot())
	})
	go func() { _ = http.Serve(listener, mux) }()
	return "http://" + listener.Addr().String(), nil
}
