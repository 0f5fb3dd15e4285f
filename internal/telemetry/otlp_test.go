package telemetry

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/platoim/plato/internal/config"
)

// collector is an OTLP trace receiver that records the names of the spans it is sent.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names []string
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.names = append(c.names, s.Name)
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func TestOTLPExporterReachesACollector(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	tel, err := New(context.Background(), Settings{Traces: config.Traces{
		Exporter: config.TraceExporterOTLP, Endpoint: ln.Addr().String(), Sampling: 1,
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, sp := tel.Tracer().StartRoot("plato.signal")
	if sp == nil {
		t.Fatal("not sampled at 1")
	}
	sp.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.names) != 1 || col.names[0] != "plato.signal" {
		t.Fatalf("the collector got %v, want [plato.signal]", col.names)
	}
}

// A collector that is down must not stop the process from starting or stopping.
func TestOTLPExporterWithoutCollector(t *testing.T) {
	tel, err := New(context.Background(), Settings{Traces: config.Traces{
		Exporter: config.TraceExporterOTLP, Endpoint: "127.0.0.1:1", Sampling: 1,
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, sp := tel.Tracer().StartRoot("plato.signal")
	sp.End()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = tel.Shutdown(ctx) // the span is lost, which is an error here; returning in time is the point
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("shutdown took %v with a 500ms deadline", el)
	}
}
