package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one reading of the proxy's resources from its /metrics.
type sample struct {
	at         time.Duration // since the load began; zero for the idle readings before and after it
	goroutines float64       // go_goroutines
	heapInuse  float64       // go_memstats_heap_inuse_bytes
	rss        float64       // process_resident_memory_bytes
	fds        float64       // process_open_fds
}

// scrape reads the proxy's /metrics once. It also returns
// switchyard_requests_total by code, to set beside the load's own counts.
func scrape(ctx context.Context, c *http.Client, url string) (sample, map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return sample{}, nil, err
	}
	// The text format, whatever the client library would prefer.
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	res, err := c.Do(req)
	if err != nil {
		return sample{}, nil, fmt.Errorf("soak: metrics: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return sample{}, nil, fmt.Errorf("soak: metrics: %s", res.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		return sample{}, nil, fmt.Errorf("soak: metrics: %w", err)
	}
	var s sample
	var missing []string
	for name, dst := range map[string]*float64{
		"go_goroutines":                 &s.goroutines,
		"go_memstats_heap_inuse_bytes":  &s.heapInuse,
		"process_resident_memory_bytes": &s.rss,
		"process_open_fds":              &s.fds,
	} {
		mf := mfs[name]
		if mf == nil || len(mf.GetMetric()) != 1 {
			missing = append(missing, name)
			continue
		}
		*dst = value(mf.GetMetric()[0])
	}
	if len(missing) > 0 {
		return sample{}, nil, fmt.Errorf("soak: metrics: missing %v (process metrics need Linux)", missing)
	}
	codes := map[string]float64{}
	if mf := mfs["switchyard_requests_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					codes[l.GetValue()] += value(m)
				}
			}
		}
	}
	return s, codes, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return m.GetUntyped().GetValue()
}
