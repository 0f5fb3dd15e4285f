package natsd

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkSessionBindingKVPut is what keeping session bindings in JetStream KV would add to each
// Bind of one device (docs/adr/0009-failover-from-the-gateways.md): one Put of a binding record,
// on the embedded server, file storage (a binding must survive the NATS process) or memory.
func BenchmarkSessionBindingKVPut(b *testing.B) {
	for _, storage := range []jetstream.StorageType{jetstream.FileStorage, jetstream.MemoryStorage} {
		b.Run(storage.String(), func(b *testing.B) {
			ctx := context.Background()
			s, err := Start(ctx, Config{Port: 0, StoreDir: b.TempDir()}, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { s.Shutdown(); s.WaitForShutdown() }()
			nc, err := nats.Connect(s.ClientURL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "bench_sessions", Storage: storage})
			if err != nil {
				b.Fatal(err)
			}
			value := []byte(`{"app":"demo","did":"device-000001","session":"room-42"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := kv.Put(ctx, fmt.Sprintf("demo.room-42.device-%06d", i%100000), value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
