// Command apiload measures Karma's HTTP API from a second process: it generates a repository of
// -n components (shared/model/modeltest), commits it, starts `karma serve --insecure-local` on it
// as a child process, and sends -requests requests per endpoint from -c connections, bounded by
// -duration, reporting throughput and latency percentiles:
//
//	go build -o /tmp/karma ./cmd/karma && go run ./scripts/apiload -karma /tmp/karma -n 10000
//
// GET /graph asks for gzip, as a client should (the 10,000-component graph is 10.5 MB raw);
// GET /impact names components spread over the graph.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usekarma/karma/shared/model/modeltest"
)

func main() {
	karma := flag.String("karma", "", "the karma binary (go build ./cmd/karma)")
	n := flag.Int("n", 10_000, "components")
	requests := flag.Int("requests", 5000, "requests per endpoint")
	conns := flag.Int("c", 8, "concurrent connections")
	duration := flag.Duration("duration", 60*time.Second, "at most this long per endpoint")
	flag.Parse()
	if *karma == "" {
		fmt.Fprintln(os.Stderr, "apiload: -karma is required")
		os.Exit(2)
	}
	if err := run(*karma, *n, *requests, *conns, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "apiload:", err)
		os.Exit(1)
	}
}

func run(karma string, n, requests, conns int, duration time.Duration) error {
	dir, err := os.MkdirTemp("", "apiload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	repo := filepath.Join(dir, "repo")
	if _, err := modeltest.Generate(repo, modeltest.Spec{Components: n, Envs: []string{"dev", "prod"}, Layers: 10, RefsPerComponent: 3, Seed: 1}); err != nil {
		return err
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.name=load", "-c", "user.email=load@example.com", "commit", "-qm", "load"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v %s", args, err, out)
		}
	}
	addrFile := filepath.Join(dir, "addr")
	serve := exec.Command(karma, "serve", "--repo", repo, "--state-dir", filepath.Join(dir, "state"), "--params-backend", "none",
		"--addr", "127.0.0.1:0", "--addr-file", addrFile, "--insecure-local", "--secret", "github:*=load", "--reconcile", "0", "--witness-every", "0",
		"--log-level", "warn")
	serve.Stderr = os.Stderr
	if err := serve.Start(); err != nil {
		return err
	}
	defer func() { serve.Process.Signal(os.Interrupt); serve.Wait() }()
	base, err := waitAddr(addrFile, 60*time.Second)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true}, Timeout: time.Minute}
	// Warm up: the first request builds and encodes the graph.
	start := time.Now()
	if err := get(client, base+"/graph", true); err != nil {
		return err
	}
	fmt.Printf("first GET /graph (build, encode): %s\n", time.Since(start).Round(time.Millisecond))
	ids, err := components(client, base)
	if err != nil {
		return err
	}
	report("GET /graph (gzip)", load(requests, conns, duration, func(int) error { return get(client, base+"/graph", true) }))
	etag, err := etagOf(client, base+"/graph")
	if err != nil {
		return err
	}
	report("GET /graph (304)", load(requests, conns, duration, func(int) error { return revalidate(client, base+"/graph", etag) }))
	report("GET /impact", load(requests, conns, duration, func(i int) error {
		return get(client, base+"/impact?component="+url.QueryEscape(ids[i%len(ids)]), false)
	}))
	return nil
}

func waitAddr(file string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(file); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return "http://" + strings.TrimSpace(string(b)), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("karma serve did not listen within %s", within)
}

func get(c *http.Client, u string, gzip bool) error {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

func etagOf(c *http.Client, u string) (string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.Header.Get("ETag") == "" {
		return "", fmt.Errorf("GET %s: no ETag", u)
	}
	return resp.Header.Get("ETag"), nil
}

// revalidate is a client that already holds the graph asking whether it changed.
func revalidate(c *http.Client, u, etag string) error {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("If-None-Match", etag)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusNotModified {
		return fmt.Errorf("GET %s with If-None-Match: %s, want 304", u, resp.Status)
	}
	return nil
}

// components are the ids of every 97th component of the graph's JSON (the prod environment).
func components(c *http.Client, base string) ([]string, error) {
	resp, err := c.Get(base + "/graph?env=prod")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ids []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	sc.Split(bufio.ScanWords)
	i := 0
	for sc.Scan() {
		w := sc.Text()
		if strings.HasPrefix(w, `"id":"prod/`) || strings.HasPrefix(w, `"prod/`) {
			continue
		}
		if k := strings.Index(w, `"id":"prod/`); k >= 0 {
			rest := w[k+6:]
			if e := strings.Index(rest, `"`); e > 0 {
				if i%97 == 0 {
					ids = append(ids, rest[:e])
				}
				i++
			}
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no prod component in GET /graph?env=prod")
	}
	return ids, nil
}

type result struct {
	n, failed int
	elapsed   time.Duration
	latencies []time.Duration
	firstErr  error
}

func load(requests, conns int, duration time.Duration, do func(i int) error) result {
	var next atomic.Int64
	var mu sync.Mutex
	var r result
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				t := time.Now()
				err := do(i)
				d := time.Since(t)
				mu.Lock()
				r.n++
				r.latencies = append(r.latencies, d)
				if err != nil {
					r.failed++
					if r.firstErr == nil {
						r.firstErr = err
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

func report(name string, r result) {
	slices.Sort(r.latencies)
	pct := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
	}
	fmt.Printf("%-20s %6d requests in %6.2fs: %7.0f req/s  p50 %-9s p99 %-9s max %-9s failed %d\n", name, r.n, r.elapsed.Seconds(),
		float64(r.n)/r.elapsed.Seconds(), pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond),
		pct(1).Round(10*time.Microsecond), r.failed)
	if r.firstErr != nil {
		fmt.Printf("  first failure: %v\n", r.firstErr)
	}
}
