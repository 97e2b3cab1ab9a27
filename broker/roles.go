package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

// The roles of procq's processes on its own broker (protocol's
// RoleProducer and RoleConsumer), each with the NATS subject permissions
// its work needs and no more. The shared token is the admin's:
// everything, as before roles (the broker's tools, the dashboard,
// existing deployments).

// rolePassword is the role's password on queue, derived from the token:
// every node of a cluster shares the token, so every node issues the same
// credentials, and a client fails over with the one it has.
func rolePassword(token, role, queue string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("procq role\x00" + role + "\x00" + queue))
	return hex.EncodeToString(m.Sum(nil))
}

// rolePermissions are what role may do on queue.
func rolePermissions(role, queue string) *server.Permissions {
	durable := protocol.DurableName(queue)
	switch role {
	case protocol.RoleConsumer:
		return &server.Permissions{
			Publish: &server.SubjectPermission{Allow: append(priorityDurables(queue), []string{
				// Read the topology; pull from the queue's durable (its
				// default priority's; the others' above) and settle what it
				// pulled.
				"$JS.API.INFO",
				"$JS.API.STREAM.INFO.*",
				"$JS.API.CONSUMER.INFO." + protocol.TasksStream + "." + durable,
				"$JS.API.CONSUMER.MSG.NEXT." + protocol.TasksStream + "." + durable,
				"$JS.ACK." + protocol.TasksStream + "." + durable + ".>",
				// Read the runs' records (the sentinel rules).
				"$JS.API.DIRECT.GET." + "KV_" + protocol.RunsBucket + ".>",
				"$JS.API.STREAM.MSG.GET." + "KV_" + protocol.RunsBucket,
				// Answer maps, dead-letter its queue's tasks, keep its
				// presence key.
				protocol.ResultsPrefix + ".>",
				protocol.NoticePrefix + ".>",
				protocol.DeadSubject(queue),
				"$KV." + protocol.ConsumersBucket + "." + queue + ".>",
				// Claim the fired tasks it takes (each firing runs once).
				"$KV." + protocol.FiredBucket + "." + queue + ".>",
				"$JS.API.DIRECT.GET.KV_" + protocol.FiredBucket + ".>",
				"$JS.API.STREAM.MSG.GET.KV_" + protocol.FiredBucket,
				// Release the unique keys of its queue's tasks that
				// succeeded and of the message-queue items it takes.
				"$KV." + protocol.UniqueBucket + ".tasks." + queue + ".*",
				"$KV." + protocol.UniqueBucket + ".q.*.*",
				"$JS.API.DIRECT.GET.KV_" + protocol.UniqueBucket + ".>",
				"$JS.API.STREAM.MSG.GET.KV_" + protocol.UniqueBucket,
				// Watch the cancel marks (an ordered consumer of the
				// bucket), and count what its controls did.
				"$JS.API.CONSUMER.CREATE.KV_" + protocol.CancelBucket + ".>",
				"$JS.API.CONSUMER.DELETE.KV_" + protocol.CancelBucket + ".>",
				protocol.CountSubject("*", queue),
				// Take from message queues ("consumer get").
				"$JS.API.CONSUMER.INFO.*." + protocol.MsgQueueGetters,
				"$JS.API.CONSUMER.MSG.NEXT.*." + protocol.MsgQueueGetters,
				"$JS.ACK.*." + protocol.MsgQueueGetters + ".>",
				// Hold a pipe end ("consumer pipe").
				protocol.PipePrefix + ".>",
				"$KV." + protocol.PipeEndsBucket + ".>",
				"$JS.API.DIRECT.GET.KV_" + protocol.PipeEndsBucket + ".>",
				"$JS.API.STREAM.MSG.GET.KV_" + protocol.PipeEndsBucket,
				"$JS.API.STREAM.MSG.GET." + protocol.PipesStream,
				"$JS.API.STREAM.PURGE." + protocol.PipesStream,
				"$JS.API.CONSUMER.CREATE." + protocol.PipesStream + ".>",
				"$JS.API.CONSUMER.DELETE." + protocol.PipesStream + ".>",
				"$JS.API.CONSUMER.MSG.NEXT." + protocol.PipesStream + ".>",
				"$JS.ACK." + protocol.PipesStream + ".>",
				"$JS.FC.>",
			}...)},
			// Its replies, and the advisories that end its waits once a
			// node died: the results stream's new leader, its durables'.
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>",
				link.StreamLeaderElected(protocol.ResultsStream),
				link.ConsumerLeaderElected(protocol.TasksStream, "*")}},
		}
	case protocol.RoleProducer:
		// Everything a producer does, on any queue (maps, message queues,
		// pipes, the run protocol's purges of its own subjects), but never
		// removing a stream or the queue's durable, and never touching the
		// dead letters (their limits included).
		return &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{
				"$JS.API.STREAM.DELETE.>", "$JS.API.CONSUMER.DELETE." + protocol.TasksStream + ".>",
				"$JS.API.STREAM.MSG.DELETE." + protocol.DeadStream, "$JS.API.STREAM.PURGE." + protocol.DeadStream,
				"$JS.API.STREAM.UPDATE." + protocol.DeadStream, // its limits would drop dead letters
			}},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}},
		}
	}
	return nil
}

// priorityDurables lets a consumer pull from the durables of queue's
// high and low priorities and settle what they delivered.
func priorityDurables(queue string) []string {
	var allow []string
	for _, p := range []protocol.Priority{protocol.PriorityHigh, protocol.PriorityLow} {
		durable := protocol.LevelDurable(queue, p)
		allow = append(allow,
			"$JS.API.CONSUMER.INFO."+protocol.TasksStream+"."+durable,
			"$JS.API.CONSUMER.MSG.NEXT."+protocol.TasksStream+"."+durable,
			"$JS.ACK."+protocol.TasksStream+"."+durable+".>")
	}
	return allow
}

// roleAuth lets in the admin (the token) and the roles' users of queue.
type roleAuth struct {
	token string
	users map[string]roleEntry // by user name
}

type roleEntry struct {
	password string
	perms    *server.Permissions
}

func newRoleAuth(token, queue string) *roleAuth {
	a := &roleAuth{token: token, users: map[string]roleEntry{}}
	for _, role := range protocol.IssuedRoles() {
		a.users[protocol.RoleUser(role, queue)] = roleEntry{password: rolePassword(token, role, queue), perms: rolePermissions(role, queue)}
	}
	return a
}

// Check implements server.Authentication.
func (a *roleAuth) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if o.Token != "" && subtle.ConstantTimeCompare([]byte(o.Token), []byte(a.token)) == 1 {
		c.RegisterUser(&server.User{Username: "procq-admin"})
		return true
	}
	u, ok := a.users[o.Username]
	if !ok || subtle.ConstantTimeCompare([]byte(o.Password), []byte(u.password)) != 1 {
		return false
	}
	c.RegisterUser(&server.User{Username: o.Username, Permissions: u.perms})
	return true
}

// writeRoleFiles writes each role's credential for queue into dir, one
// 0600 file per role named after it: what procq's processes read
// (broker.credentials_dir), and what an operator copies to a worker host
// instead of the token.
func writeRoleFiles(dir, token, queue string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials dir: %w", err)
	}
	for _, role := range protocol.IssuedRoles() {
		path := filepath.Join(dir, role)
		body := link.FormatRoleFile(protocol.RoleUser(role, queue), rolePassword(token, role, queue))
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, body, 0o600); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
	}
	return nil
}
