// loadgen: a closed-loop HTTP and gRPC load generator for the serving benchmark.
//
// C workers each keep one keep-alive connection and send the same POST body
// back to back, so exactly C requests are in flight. With -grpc, the body is a
// serialized request message, sent as is to that method (a codec that passes
// bytes through: no generated code, so any server's messages will do), one
// HTTP/2 connection per worker; status is the gRPC code's name. A warm-up phase runs first
// and is discarded; the measured phase stops at N requests or after D, whichever
// comes first. Every latency is kept, so percentiles are exact (nearest rank).
// Prints one JSON object.
//
//	loadgen -url http://127.0.0.1:8080/v2/models/m/infer -body body.json -c 32 -n 200000 -d 20s -warmup 3s
//	loadgen -url http://127.0.0.1:8081 -grpc /inference.GRPCInferenceService/ModelInfer -body request.pb -c 32
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// rawCodec sends and receives messages as the bytes they already are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

type result struct {
	Requests    int64          `json:"requests"`
	Errors      int64          `json:"errors"`
	Status      map[string]int `json:"status"`
	Seconds     float64        `json:"seconds"`
	RPS         float64        `json:"rps"`
	MeanMs      float64        `json:"mean_ms"`
	P50Ms       float64        `json:"p50_ms"`
	P90Ms       float64        `json:"p90_ms"`
	P99Ms       float64        `json:"p99_ms"`
	MaxMs       float64        `json:"max_ms"`
	Concurrency int            `json:"concurrency"`
}

// percentile by nearest rank over sorted latencies: the smallest value with at
// least q of the samples at or below it.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

type sample struct {
	latency time.Duration
	status  int
}

func main() {
	target := flag.String("url", "", "URL to POST to (127.0.0.0/8 only)")
	bodyFile := flag.String("body", "", "file with the request body")
	concurrency := flag.Int("c", 1, "requests in flight")
	maxRequests := flag.Int64("n", 100000, "stop the measured phase after this many requests")
	maxDuration := flag.Duration("d", 20*time.Second, "stop the measured phase after this long")
	warmup := flag.Duration("warmup", 3*time.Second, "warm-up phase, discarded")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	grpcMethod := flag.String("grpc", "", "gRPC method to call at -url's host:port instead of POSTing")
	var headers headerFlags
	flag.Var(&headers, "header", "an extra HTTP request header, Name:value (repeatable)")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || (u.Hostname() != "localhost" && !bytes.HasPrefix([]byte(u.Hostname()), []byte("127."))) {
		fmt.Fprintln(os.Stderr, "loadgen: -url must be http://127.x.x.x or localhost")
		os.Exit(2)
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	conns := make([]*grpc.ClientConn, *concurrency)
	if *grpcMethod != "" {
		for w := range conns {
			conns[w], err = grpc.NewClient(u.Host,
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", err)
				os.Exit(2)
			}
		}
	}
	client := &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			MaxIdleConns:        *concurrency,
			MaxIdleConnsPerHost: *concurrency,
			MaxConnsPerHost:     *concurrency,
			DisableCompression:  true,
		},
	}
	send := func(w int) sample {
		if *grpcMethod != "" {
			return sendGRPC(conns[w], *grpcMethod, body, *timeout)
		}
		req, _ := http.NewRequest(http.MethodPost, *target, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for _, h := range headers {
			req.Header.Set(h[0], h[1])
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return sample{time.Since(start), 0}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return sample{time.Since(start), resp.StatusCode}
	}

	// Warm-up: the same workers, the same connections, nothing recorded.
	run := func(deadline time.Time, tickets *int64, limit int64, record bool) [][]sample {
		out := make([][]sample, *concurrency)
		var wg sync.WaitGroup
		for w := 0; w < *concurrency; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for time.Now().Before(deadline) && atomic.AddInt64(tickets, 1) <= limit {
					s := send(w)
					if record {
						out[w] = append(out[w], s)
					}
				}
			}(w)
		}
		wg.Wait()
		return out
	}
	var warm int64
	run(time.Now().Add(*warmup), &warm, math.MaxInt64, false)

	var tickets int64
	start := time.Now()
	perWorker := run(start.Add(*maxDuration), &tickets, *maxRequests, true)
	elapsed := time.Since(start)

	res := result{Status: map[string]int{}, Concurrency: *concurrency, Seconds: elapsed.Seconds()}
	var latencies []time.Duration
	var total time.Duration
	for _, samples := range perWorker {
		for _, s := range samples {
			res.Requests++
			res.Status[fmt.Sprint(s.status)]++
			if s.status != http.StatusOK && s.status != grpcOK {
				res.Errors++
			}
			latencies = append(latencies, s.latency)
			total += s.latency
		}
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if res.Requests > 0 {
		res.RPS = float64(res.Requests) / elapsed.Seconds()
		res.MeanMs = ms(total) / float64(res.Requests)
		res.P50Ms = ms(percentile(latencies, 0.50))
		res.P90Ms = ms(percentile(latencies, 0.90))
		res.P99Ms = ms(percentile(latencies, 0.99))
		res.MaxMs = ms(latencies[len(latencies)-1])
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

// grpcOK is the status recorded for a gRPC call that returned OK; others record
// grpcOK + their code.
const grpcOK = 1000

func sendGRPC(conn *grpc.ClientConn, method string, body []byte, timeout time.Duration) sample {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var reply []byte
	start := time.Now()
	err := conn.Invoke(ctx, method, &body, &reply)
	return sample{time.Since(start), grpcOK + int(status.Code(err))}
}

type headerFlags [][2]string

func (h *headerFlags) String() string { return fmt.Sprint(*h) }
func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok {
		return fmt.Errorf("-header %q: want Name:value", v)
	}
	*h = append(*h, [2]string{name, value})
	return nil
}
