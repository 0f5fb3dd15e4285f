package business_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/platoim/plato/sdk/business"
)

// A business server: accept uplinks that are not empty, put every device in "lobby" when it logs
// in, and serve until interrupted.
func ExampleServer() {
	srv, err := business.Listen("127.0.0.1:8902", business.Handlers{
		Uplink: func(ctx context.Context, u business.Uplink) error {
			if len(u.Payload) == 0 {
				return business.Refuse(2001, "empty message")
			}
			log.Printf("%s/%s says %q", u.AppID, u.DID, u.Payload)
			return nil
		},
		Sessions: func(ctx context.Context, d business.Device) ([]string, error) {
			return []string{"lobby"}, nil
		},
		Disconnected: func(ctx context.Context, e business.Event) {
			log.Printf("%s left (close code %d)", e.DID, e.Reason)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Stop(stopCtx); err != nil {
		log.Print(err)
	}
}

// Pushing to a room and to one device, waiting for its ACK.
func ExampleClient_Push() {
	plato, err := business.NewClient(business.ClientConfig{
		Addr: "127.0.0.1:8901", AppID: "demo", Key: os.Getenv("PLATO_DEMO_KEY"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer plato.Close()
	ctx := context.Background()

	res, err := plato.Push(ctx, business.Push{Session: "lobby", Payload: []byte(`{"text":"hello, lobby"}`)})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("message %d went %s to %d members", res.MsgID, res.Route, res.SessionMembers)

	res, err = plato.Push(ctx, business.Push{
		DIDs: []string{"bob"}, Payload: []byte(`{"text":"hi bob"}`),
		QoS: business.QoSAtLeastOnce, WaitAck: true, Timeout: 3 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range res.Targets {
		log.Printf("%s: %s", t.DID, t.Status) // acked, timeout or offline
	}
}

func ExampleClient_PushBatch() {
	plato, err := business.NewClient(business.ClientConfig{
		Addr: "127.0.0.1:8901", AppID: "demo", Key: os.Getenv("PLATO_DEMO_KEY"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer plato.Close()

	// One message per device, in one call; each device's messages arrive in this order.
	pushes := []business.Push{
		{DIDs: []string{"alice"}, Payload: []byte(`{"text":"your order shipped"}`)},
		{DIDs: []string{"bob"}, Payload: []byte(`{"text":"your order shipped"}`)},
		{DIDs: []string{"alice"}, Payload: []byte(`{"text":"and it arrives today"}`)},
	}
	results, err := plato.PushBatch(context.Background(), pushes)
	if err != nil {
		log.Fatal(err) // Plato unreachable, or the whole batch refused
	}
	for i, r := range results {
		if r.Err != nil {
			log.Printf("push %d refused (%d): %v", i, business.CodeOf(r.Err), r.Err)
			continue
		}
		log.Printf("push %d: message %d, offline: %v", i, r.Result.MsgID, r.Result.Offline())
	}
}

func ExampleCodeOf() {
	plato, _ := business.NewClient(business.ClientConfig{AppID: "demo", Key: "not-the-key"})
	_, err := plato.Bind(context.Background(), "lobby", "alice")
	switch business.CodeOf(err) {
	case 0:
		if err != nil {
			log.Printf("Plato unreachable: %v", err) // retry later
		}
	case business.CodeAppMismatch:
		log.Fatal("check state.business.keys.demo: ", err)
	}
}

func ExampleRefuse() {
	err := fmt.Errorf("checking the message: %w", business.Refuse(2003, "you are muted"))
	var r *business.Refusal
	if errors.As(err, &r) {
		fmt.Println(r.Code, r.Message)
	}
	// Output: 2003 you are muted
}
