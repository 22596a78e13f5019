package db_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/narrate/narrate/db/dbtest"
)

// policyCase is one statement run by one actor against the fixture,
// straight in SQL on the application login.
type policyCase struct {
	table, op, actor, name string
	sql                    string
	// rows is how many rows the statement returns or changes when it is
	// allowed; ignored when code is set.
	rows int64
	// code is the SQLSTATE the statement must fail with, "" if it must
	// succeed.
	code string
	// changes says whether the committed statement changes the fixture's
	// rows as the superuser sees them. Refused statements never do.
	changes bool
}

// policyCases covers every table x operation x actor. A is the owner of the
// rows under test, B another user, F a user without any rows, admin a user
// whose token says app_metadata.role = admin (the API runs admins as
// narrate_admin), anon a request without a token, service the worker's
// role, and login the application's login role before it switches to any
// API role. Admin access needs both the role and the claim: adminclaim is
// an admin's token used as plain authenticated (supabase-js without a
// token hook), adminrole is narrate_admin with a plain user's token.
var policyCases = []policyCase{
	// profiles
	{table: "profiles", op: "select", actor: "A", name: "own only", sql: `SELECT 1 FROM profiles WHERE user_id = ANY({users})`, rows: 1},
	{table: "profiles", op: "select", actor: "B", name: "A's", sql: `SELECT 1 FROM profiles WHERE user_id = {A}`, rows: 0},
	{table: "profiles", op: "select", actor: "admin", name: "everyone's", sql: `SELECT 1 FROM profiles WHERE user_id = ANY({users})`, rows: 2},
	{table: "profiles", op: "select", actor: "anon", sql: `SELECT 1 FROM profiles`, code: codeDenied},
	{table: "profiles", op: "select", actor: "login", sql: `SELECT 1 FROM profiles`, code: codeDenied},
	{table: "profiles", op: "select", actor: "service", sql: `SELECT 1 FROM profiles WHERE user_id = ANY({users})`, rows: 2},
	{table: "profiles", op: "select", actor: "adminclaim", name: "everyone's", sql: `SELECT 1 FROM profiles WHERE user_id = ANY({users})`, rows: 0},
	{table: "profiles", op: "select", actor: "adminrole", name: "everyone's", sql: `SELECT 1 FROM profiles WHERE user_id = ANY({users})`, rows: 0},
	{table: "profiles", op: "insert", actor: "F", name: "own", sql: `INSERT INTO profiles (user_id, display_name) VALUES ({F}, 'Fresh')`, rows: 1, changes: true},
	{table: "profiles", op: "insert", actor: "admin", name: "own", sql: `INSERT INTO profiles (user_id, display_name) VALUES ({M}, 'Admin')`, rows: 1, changes: true},
	{table: "profiles", op: "insert", actor: "B", name: "for A", sql: `INSERT INTO profiles (user_id) VALUES ({A})`, code: codeDenied},
	{table: "profiles", op: "insert", actor: "B", name: "for F", sql: `INSERT INTO profiles (user_id) VALUES ({F})`, code: codeDenied},
	{table: "profiles", op: "insert", actor: "admin", name: "for F", sql: `INSERT INTO profiles (user_id) VALUES ({F})`, code: codeDenied},
	{table: "profiles", op: "insert", actor: "anon", sql: `INSERT INTO profiles (user_id) VALUES ({F})`, code: codeDenied},
	{table: "profiles", op: "update", actor: "A", name: "own", sql: `UPDATE profiles SET display_name = 'New' WHERE user_id = {A}`, rows: 1, changes: true},
	{table: "profiles", op: "update", actor: "A", name: "own to F", sql: `UPDATE profiles SET user_id = {F} WHERE user_id = {A}`, code: codeDenied},
	{table: "profiles", op: "update", actor: "A", name: "own created_at", sql: `UPDATE profiles SET created_at = now() - interval '1 day' WHERE user_id = {A}`, code: codeDenied},
	{table: "profiles", op: "update", actor: "B", name: "A's", sql: `UPDATE profiles SET display_name = 'Mallory' WHERE user_id = {A}`, rows: 0},
	{table: "profiles", op: "update", actor: "admin", name: "A's", sql: `UPDATE profiles SET display_name = 'Admin' WHERE user_id = {A}`, rows: 0},
	{table: "profiles", op: "update", actor: "anon", sql: `UPDATE profiles SET display_name = 'Anon'`, code: codeDenied},
	{table: "profiles", op: "update", actor: "service", name: "A's", sql: `UPDATE profiles SET display_name = 'Worker' WHERE user_id = {A}`, rows: 1, changes: true},
	{table: "profiles", op: "delete", actor: "A", name: "own", sql: `DELETE FROM profiles WHERE user_id = {A}`, rows: 1, changes: true},
	{table: "profiles", op: "delete", actor: "B", name: "A's", sql: `DELETE FROM profiles WHERE user_id = {A}`, rows: 0},
	{table: "profiles", op: "delete", actor: "admin", name: "A's", sql: `DELETE FROM profiles WHERE user_id = {A}`, rows: 0},
	{table: "profiles", op: "delete", actor: "anon", sql: `DELETE FROM profiles`, code: codeDenied},
	{table: "profiles", op: "delete", actor: "service", name: "A's", sql: `DELETE FROM profiles WHERE user_id = {A}`, rows: 1, changes: true},

	// voice_samples
	{table: "voice_samples", op: "select", actor: "A", name: "own only", sql: `SELECT 1 FROM voice_samples WHERE user_id = ANY({users})`, rows: 1},
	{table: "voice_samples", op: "select", actor: "B", name: "A's", sql: `SELECT 1 FROM voice_samples WHERE user_id = {A}`, rows: 0},
	{table: "voice_samples", op: "select", actor: "admin", name: "everyone's", sql: `SELECT 1 FROM voice_samples WHERE user_id = ANY({users})`, rows: 2},
	{table: "voice_samples", op: "select", actor: "adminclaim", name: "everyone's", sql: `SELECT 1 FROM voice_samples WHERE user_id = ANY({users})`, rows: 0},
	{table: "voice_samples", op: "select", actor: "adminrole", name: "everyone's", sql: `SELECT 1 FROM voice_samples WHERE user_id = ANY({users})`, rows: 0},
	{table: "voice_samples", op: "select", actor: "anon", sql: `SELECT 1 FROM voice_samples`, code: codeDenied},
	{table: "voice_samples", op: "select", actor: "service", sql: `SELECT 1 FROM voice_samples WHERE user_id = ANY({users})`, rows: 2},
	// Only the server writes voice samples: a user could otherwise name
	// another user's cloned voice, or verify their own sample.
	{table: "voice_samples", op: "insert", actor: "F", name: "own unverified", sql: `INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase) VALUES ({F}, 'voice-f', 'one two three')`, code: codeDenied},
	{table: "voice_samples", op: "insert", actor: "service", name: "for F", sql: `INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase) VALUES ({F}, 'voice-f', 'one two three')`, rows: 1, changes: true},
	{table: "voice_samples", op: "insert", actor: "F", name: "own verified", sql: `INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, verified) VALUES ({F}, 'voice-f', 'one two three', true)`, code: codeDenied},
	{table: "voice_samples", op: "insert", actor: "B", name: "for A", sql: `INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase) VALUES ({A}, 'voice-x', 'one two three')`, code: codeDenied},
	{table: "voice_samples", op: "insert", actor: "B", name: "for F", sql: `INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase) VALUES ({F}, 'voice-x', 'one two three')`, code: codeDenied},
	{table: "voice_samples", op: "insert", actor: "admin", name: "for F", sql: `INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase) VALUES ({F}, 'voice-x', 'one two three')`, code: codeDenied},
	{table: "voice_samples", op: "insert", actor: "anon", sql: `INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase) VALUES ({F}, 'voice-x', 'one two three')`, code: codeDenied},
	{table: "voice_samples", op: "update", actor: "A", name: "own voice id", sql: `UPDATE voice_samples SET elevenlabs_voice_id = 'other' WHERE user_id = {A}`, code: codeDenied},
	{table: "voice_samples", op: "update", actor: "A", name: "own phrase", sql: `UPDATE voice_samples SET verification_phrase = 'easy' WHERE user_id = {A}`, code: codeDenied},
	{table: "voice_samples", op: "update", actor: "A", name: "verify own", sql: `UPDATE voice_samples SET verified = true WHERE user_id = {A}`, code: codeDenied},
	{table: "voice_samples", op: "update", actor: "B", name: "A's", sql: `UPDATE voice_samples SET verified = false WHERE user_id = {A}`, code: codeDenied},
	{table: "voice_samples", op: "update", actor: "admin", name: "A's", sql: `UPDATE voice_samples SET verified = false WHERE user_id = {A}`, code: codeDenied},
	{table: "voice_samples", op: "update", actor: "anon", sql: `UPDATE voice_samples SET verified = true`, code: codeDenied},
	{table: "voice_samples", op: "update", actor: "service", name: "verify B's", sql: `UPDATE voice_samples SET verified = true WHERE user_id = {B}`, rows: 1, changes: true},
	{table: "voice_samples", op: "delete", actor: "A", name: "own", sql: `DELETE FROM voice_samples WHERE user_id = {A}`, rows: 1, changes: true},
	{table: "voice_samples", op: "delete", actor: "B", name: "A's", sql: `DELETE FROM voice_samples WHERE user_id = {A}`, rows: 0},
	{table: "voice_samples", op: "delete", actor: "admin", name: "A's", sql: `DELETE FROM voice_samples WHERE user_id = {A}`, rows: 0},
	{table: "voice_samples", op: "delete", actor: "anon", sql: `DELETE FROM voice_samples`, code: codeDenied},

	// stories
	{table: "stories", op: "select", actor: "anon", sql: `SELECT 1 FROM stories WHERE id = {S}`, rows: 1},
	{table: "stories", op: "select", actor: "A", sql: `SELECT 1 FROM stories WHERE id = {S}`, rows: 1},
	{table: "stories", op: "select", actor: "admin", sql: `SELECT 1 FROM stories WHERE id = {S}`, rows: 1},
	{table: "stories", op: "select", actor: "service", sql: `SELECT 1 FROM stories WHERE id = {S}`, rows: 1},
	{table: "stories", op: "select", actor: "login", sql: `SELECT 1 FROM stories`, code: codeDenied},
	{table: "stories", op: "insert", actor: "A", sql: `INSERT INTO stories (title, slug, content) VALUES ('T', '{p}-a', 'c')`, code: codeDenied},
	{table: "stories", op: "insert", actor: "anon", sql: `INSERT INTO stories (title, slug, content) VALUES ('T', '{p}-a', 'c')`, code: codeDenied},
	{table: "stories", op: "insert", actor: "admin", sql: `INSERT INTO stories (title, slug, content) VALUES ('T', '{p}-a', 'c')`, rows: 1, changes: true},
	{table: "stories", op: "insert", actor: "adminclaim", sql: `INSERT INTO stories (title, slug, content) VALUES ('T', '{p}-a', 'c')`, code: codeDenied},
	{table: "stories", op: "insert", actor: "adminrole", sql: `INSERT INTO stories (title, slug, content) VALUES ('T', '{p}-a', 'c')`, code: codeDenied},
	{table: "stories", op: "insert", actor: "admin", name: "with version", sql: `INSERT INTO stories (title, slug, content, version) VALUES ('T', '{p}-a', 'c', 7)`, code: codeDenied},
	{table: "stories", op: "insert", actor: "service", sql: `INSERT INTO stories (title, slug, content) VALUES ('T', '{p}-a', 'c')`, rows: 1, changes: true},
	{table: "stories", op: "update", actor: "A", sql: `UPDATE stories SET title = 'Mine' WHERE id = {S}`, rows: 0},
	{table: "stories", op: "update", actor: "anon", sql: `UPDATE stories SET title = 'Mine' WHERE id = {S}`, code: codeDenied},
	{table: "stories", op: "update", actor: "admin", sql: `UPDATE stories SET title = 'Edited', version = version + 1 WHERE id = {S}`, rows: 1, changes: true},
	{table: "stories", op: "update", actor: "adminclaim", sql: `UPDATE stories SET title = 'Edited' WHERE id = {S}`, rows: 0},
	{table: "stories", op: "update", actor: "adminrole", sql: `UPDATE stories SET title = 'Edited' WHERE id = {S}`, rows: 0},
	{table: "stories", op: "update", actor: "admin", name: "created_at", sql: `UPDATE stories SET created_at = now() WHERE id = {S}`, code: codeDenied},
	{table: "stories", op: "delete", actor: "A", sql: `DELETE FROM stories WHERE id = {S}`, rows: 0},
	{table: "stories", op: "delete", actor: "anon", sql: `DELETE FROM stories WHERE id = {S}`, code: codeDenied},
	{table: "stories", op: "delete", actor: "admin", sql: `DELETE FROM stories WHERE id = {S}`, rows: 1, changes: true},
	{table: "stories", op: "delete", actor: "adminclaim", sql: `DELETE FROM stories WHERE id = {S}`, rows: 0},

	// story_generations
	{table: "story_generations", op: "select", actor: "A", name: "own only", sql: `SELECT 1 FROM story_generations WHERE user_id = ANY({users})`, rows: 4},
	{table: "story_generations", op: "select", actor: "B", name: "A's by owner", sql: `SELECT 1 FROM story_generations WHERE user_id = {A}`, rows: 0},
	{table: "story_generations", op: "select", actor: "B", name: "A's by id", sql: `SELECT 1 FROM story_generations WHERE id = ANY({agens})`, rows: 0},
	{table: "story_generations", op: "select", actor: "admin", name: "everyone's", sql: `SELECT 1 FROM story_generations WHERE user_id = ANY({users})`, rows: 5},
	{table: "story_generations", op: "select", actor: "adminclaim", name: "everyone's", sql: `SELECT 1 FROM story_generations WHERE user_id = ANY({users})`, rows: 0},
	{table: "story_generations", op: "select", actor: "adminrole", name: "everyone's", sql: `SELECT 1 FROM story_generations WHERE user_id = ANY({users})`, rows: 0},
	{table: "story_generations", op: "select", actor: "anon", sql: `SELECT 1 FROM story_generations`, code: codeDenied},
	{table: "story_generations", op: "select", actor: "service", sql: `SELECT 1 FROM story_generations WHERE user_id = ANY({users})`, rows: 5},
	{table: "story_generations", op: "insert", actor: "A", name: "own, verified voice", sql: `INSERT INTO story_generations (user_id, story_id) VALUES ({A}, {S})`, rows: 1, changes: true},
	{table: "story_generations", op: "insert", actor: "A", name: "own with metadata", sql: `INSERT INTO story_generations (user_id, story_id, metadata) VALUES ({A}, {S}, '{"requested_story_version": 1}')`, rows: 1, changes: true},
	{table: "story_generations", op: "insert", actor: "B", name: "own, unverified voice", sql: `INSERT INTO story_generations (user_id, story_id) VALUES ({B}, {S})`, code: codeDenied},
	{table: "story_generations", op: "insert", actor: "F", name: "own, no voice", sql: `INSERT INTO story_generations (user_id, story_id) VALUES ({F}, {S})`, code: codeDenied},
	{table: "story_generations", op: "insert", actor: "B", name: "for A", sql: `INSERT INTO story_generations (user_id, story_id) VALUES ({A}, {S})`, code: codeDenied},
	{table: "story_generations", op: "insert", actor: "A", name: "for B", sql: `INSERT INTO story_generations (user_id, story_id) VALUES ({B}, {S})`, code: codeDenied},
	{table: "story_generations", op: "insert", actor: "admin", name: "for A", sql: `INSERT INTO story_generations (user_id, story_id) VALUES ({A}, {S})`, code: codeDenied},
	{table: "story_generations", op: "insert", actor: "A", name: "completed", sql: `INSERT INTO story_generations (user_id, story_id, status) VALUES ({A}, {S}, 'completed')`, code: codeDenied},
	{table: "story_generations", op: "insert", actor: "A", name: "with progress", sql: `INSERT INTO story_generations (user_id, story_id, progress) VALUES ({A}, {S}, 50)`, code: codeDenied},
	{table: "story_generations", op: "insert", actor: "A", name: "with result", sql: `INSERT INTO story_generations (user_id, story_id, result_url) VALUES ({A}, {S}, 'audio/x.mp3')`, code: codeDenied},
	{table: "story_generations", op: "insert", actor: "anon", sql: `INSERT INTO story_generations (user_id, story_id) VALUES ({A}, {S})`, code: codeDenied},
	{table: "story_generations", op: "insert", actor: "service", name: "for B", sql: `INSERT INTO story_generations (user_id, story_id) VALUES ({B}, {S})`, rows: 1, changes: true},
	{table: "story_generations", op: "update", actor: "A", name: "cancel own pending", sql: `UPDATE story_generations SET status = 'failed' WHERE id = {gP}`, rows: 1, changes: true},
	{table: "story_generations", op: "update", actor: "A", name: "cancel own running", sql: `UPDATE story_generations SET status = 'failed' WHERE id = {gR}`, rows: 1, changes: true},
	{table: "story_generations", op: "update", actor: "A", name: "cancel own completed", sql: `UPDATE story_generations SET status = 'failed' WHERE id = {gC}`, rows: 0},
	{table: "story_generations", op: "update", actor: "A", name: "revive own failed", sql: `UPDATE story_generations SET status = 'pending' WHERE id = {gF}`, rows: 0},
	{table: "story_generations", op: "update", actor: "A", name: "complete own", sql: `UPDATE story_generations SET status = 'completed' WHERE id = {gP}`, code: codeDenied},
	{table: "story_generations", op: "update", actor: "A", name: "start own", sql: `UPDATE story_generations SET status = 'in_progress' WHERE id = {gP}`, code: codeDenied},
	{table: "story_generations", op: "update", actor: "A", name: "own progress", sql: `UPDATE story_generations SET progress = 100 WHERE id = {gR}`, code: codeDenied},
	{table: "story_generations", op: "update", actor: "A", name: "own result", sql: `UPDATE story_generations SET result_url = 'audio/x.mp3' WHERE id = {gC}`, code: codeDenied},
	{table: "story_generations", op: "update", actor: "A", name: "own metadata", sql: `UPDATE story_generations SET metadata = '{"x": 1}' WHERE id = {gP}`, code: codeDenied},
	{table: "story_generations", op: "update", actor: "A", name: "give own to B", sql: `UPDATE story_generations SET user_id = {B} WHERE id = {gP}`, code: codeDenied},
	{table: "story_generations", op: "update", actor: "B", name: "cancel A's", sql: `UPDATE story_generations SET status = 'failed' WHERE id = ANY({agens})`, rows: 0},
	{table: "story_generations", op: "update", actor: "admin", name: "cancel A's", sql: `UPDATE story_generations SET status = 'failed' WHERE id = {gP}`, rows: 1, changes: true},
	{table: "story_generations", op: "update", actor: "adminclaim", name: "cancel A's", sql: `UPDATE story_generations SET status = 'failed' WHERE id = {gP}`, rows: 0},
	{table: "story_generations", op: "update", actor: "adminrole", name: "cancel A's", sql: `UPDATE story_generations SET status = 'failed' WHERE id = {gP}`, rows: 0},
	{table: "story_generations", op: "update", actor: "anon", sql: `UPDATE story_generations SET status = 'failed'`, code: codeDenied},
	{table: "story_generations", op: "update", actor: "service", name: "complete", sql: `UPDATE story_generations SET status = 'completed', progress = 100, result_url = 'audio/r.mp3' WHERE id = {gR}`, rows: 1, changes: true},
	{table: "story_generations", op: "delete", actor: "A", name: "own", sql: `DELETE FROM story_generations WHERE id = {gP}`, code: codeDenied},
	{table: "story_generations", op: "delete", actor: "B", name: "A's", sql: `DELETE FROM story_generations WHERE id = {gP}`, code: codeDenied},
	{table: "story_generations", op: "delete", actor: "admin", name: "A's", sql: `DELETE FROM story_generations WHERE id = {gP}`, code: codeDenied},
	{table: "story_generations", op: "delete", actor: "anon", sql: `DELETE FROM story_generations`, code: codeDenied},
	{table: "story_generations", op: "delete", actor: "service", name: "A's", sql: `DELETE FROM story_generations WHERE id = {gP}`, rows: 1, changes: true},

	// generation_logs
	{table: "generation_logs", op: "select", actor: "A", name: "own only", sql: `SELECT 1 FROM generation_logs WHERE generation_id = ANY({gens})`, rows: 2},
	{table: "generation_logs", op: "select", actor: "B", name: "A's", sql: `SELECT 1 FROM generation_logs WHERE generation_id = ANY({agens})`, rows: 0},
	{table: "generation_logs", op: "select", actor: "admin", name: "everyone's", sql: `SELECT 1 FROM generation_logs WHERE generation_id = ANY({gens})`, rows: 3},
	{table: "generation_logs", op: "select", actor: "adminclaim", name: "everyone's", sql: `SELECT 1 FROM generation_logs WHERE generation_id = ANY({gens})`, rows: 0},
	{table: "generation_logs", op: "select", actor: "adminrole", name: "everyone's", sql: `SELECT 1 FROM generation_logs WHERE generation_id = ANY({gens})`, rows: 0},
	{table: "generation_logs", op: "select", actor: "anon", sql: `SELECT 1 FROM generation_logs`, code: codeDenied},
	{table: "generation_logs", op: "select", actor: "service", sql: `SELECT 1 FROM generation_logs WHERE generation_id = ANY({gens})`, rows: 3},
	{table: "generation_logs", op: "insert", actor: "A", name: "canceled on own failed", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gF}, 'canceled')`, rows: 1, changes: true},
	{table: "generation_logs", op: "insert", actor: "A", name: "other event on own failed", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gF}, 'completed')`, code: codeDenied},
	{table: "generation_logs", op: "insert", actor: "A", name: "canceled on own pending", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gP}, 'canceled')`, code: codeDenied},
	{table: "generation_logs", op: "insert", actor: "A", name: "backdated", sql: `INSERT INTO generation_logs (generation_id, event, occurred_at) VALUES ({gF}, 'canceled', now() - interval '1 day')`, code: codeDenied},
	{table: "generation_logs", op: "insert", actor: "B", name: "canceled on A's failed", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gF}, 'canceled')`, code: codeDenied},
	{table: "generation_logs", op: "insert", actor: "admin", name: "canceled on A's pending", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gP}, 'canceled')`, code: codeDenied},
	{table: "generation_logs", op: "insert", actor: "admin", name: "canceled on A's failed", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gF}, 'canceled')`, rows: 1, changes: true},
	{table: "generation_logs", op: "insert", actor: "adminclaim", name: "canceled on A's failed", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gF}, 'canceled')`, code: codeDenied},
	{table: "generation_logs", op: "insert", actor: "adminrole", name: "canceled on A's failed", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gF}, 'canceled')`, code: codeDenied},
	{table: "generation_logs", op: "insert", actor: "admin", name: "other event on A's failed", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gF}, 'completed')`, code: codeDenied},
	{table: "generation_logs", op: "insert", actor: "anon", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gF}, 'canceled')`, code: codeDenied},
	{table: "generation_logs", op: "insert", actor: "service", sql: `INSERT INTO generation_logs (generation_id, event) VALUES ({gR}, 'chunk 1 of 3 done')`, rows: 1, changes: true},
	{table: "generation_logs", op: "update", actor: "A", name: "own", sql: `UPDATE generation_logs SET event = 'canceled' WHERE generation_id = {gP}`, code: codeDenied},
	{table: "generation_logs", op: "update", actor: "B", name: "A's", sql: `UPDATE generation_logs SET event = 'x' WHERE generation_id = {gP}`, code: codeDenied},
	{table: "generation_logs", op: "update", actor: "admin", name: "A's", sql: `UPDATE generation_logs SET event = 'x' WHERE generation_id = {gP}`, code: codeDenied},
	{table: "generation_logs", op: "update", actor: "anon", sql: `UPDATE generation_logs SET event = 'x'`, code: codeDenied},
	{table: "generation_logs", op: "delete", actor: "A", name: "own", sql: `DELETE FROM generation_logs WHERE generation_id = {gP}`, code: codeDenied},
	{table: "generation_logs", op: "delete", actor: "B", name: "A's", sql: `DELETE FROM generation_logs WHERE generation_id = {gP}`, code: codeDenied},
	{table: "generation_logs", op: "delete", actor: "admin", name: "A's", sql: `DELETE FROM generation_logs WHERE generation_id = {gP}`, code: codeDenied},
	{table: "generation_logs", op: "delete", actor: "anon", sql: `DELETE FROM generation_logs`, code: codeDenied},
	{table: "generation_logs", op: "delete", actor: "service", name: "A's", sql: `DELETE FROM generation_logs WHERE generation_id = {gP}`, rows: 1, changes: true},

	// auth.users: API roles never touch it; the worker's role may.
	{table: "auth.users", op: "select", actor: "A", sql: `SELECT 1 FROM auth.users WHERE id = {A}`, code: codeDenied},
	{table: "auth.users", op: "select", actor: "anon", sql: `SELECT 1 FROM auth.users`, code: codeDenied},
	{table: "auth.users", op: "insert", actor: "F", sql: `INSERT INTO auth.users (email) VALUES ('{p}-new@example.com')`, code: codeDenied},
	{table: "auth.users", op: "update", actor: "A", name: "own email", sql: `UPDATE auth.users SET email = 'x-{p}@example.com' WHERE id = {A}`, code: codeDenied},
	{table: "auth.users", op: "update", actor: "admin", name: "A's email", sql: `UPDATE auth.users SET email = 'x-{p}@example.com' WHERE id = {A}`, code: codeDenied},
	{table: "auth.users", op: "delete", actor: "A", name: "own", sql: `DELETE FROM auth.users WHERE id = {A}`, code: codeDenied},
	{table: "auth.users", op: "select", actor: "service", sql: `SELECT 1 FROM auth.users WHERE id = ANY({users})`, rows: 4},
}

func testPolicies(t *testing.T, tdb *testDB) {
	for _, tc := range policyCases {
		name := tc.table + "/" + tc.op + "/" + tc.actor
		if tc.name != "" {
			name += "/" + tc.name
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t, tdb.Admin)
			before := f.snapshot(t, tdb.Admin)
			rows, err := execAs(ctx, tdb.App, f.who(tc.actor), f.expand(tc.sql))
			switch {
			case tc.code != "":
				if got := dbtest.SQLState(err); got != tc.code {
					t.Fatalf("error = %v (SQLSTATE %q), want SQLSTATE %s", err, got, tc.code)
				}
			case err != nil:
				t.Fatalf("error = %v, want none", err)
			case rows != tc.rows:
				t.Fatalf("rows = %d, want %d", rows, tc.rows)
			}
			after := f.snapshot(t, tdb.Admin)
			if changed := after != before; changed != tc.changes {
				t.Fatalf("fixture changed = %v, want %v\nbefore: %s\nafter:  %s", changed, tc.changes, before, after)
			}
		})
	}
}

// TestPolicyCasesCoverEveryTable keeps the matrix honest: every table is
// tried with every operation by its owner, another user, an admin and anon.
func TestPolicyCasesCoverEveryTable(t *testing.T) {
	t.Parallel()
	type key struct{ table, op, actor string }
	seen := map[key]bool{}
	for _, tc := range policyCases {
		seen[key{tc.table, tc.op, tc.actor}] = true
	}
	for _, table := range rlsTables {
		for _, op := range []string{"select", "insert", "update", "delete"} {
			for _, actor := range []string{"A", "B", "admin", "anon", "service"} {
				want := actor
				switch {
				case table == "stories" && actor == "B":
					// Stories have no owner: B is just another plain user.
					want = "A"
				case op == "insert" && actor == "A" && (table == "profiles" || table == "voice_samples"):
					// A already has the one row allowed; F inserts its own.
					want = "F"
				case actor == "service" && op != "select":
					// One service write per table (below) shows the worker's access.
					continue
				}
				if !seen[key{table, op, want}] {
					t.Errorf("no case for %s on %s by %s", op, table, want)
				}
			}
		}
		if !seen[key{table, "insert", "service"}] && !seen[key{table, "update", "service"}] && !seen[key{table, "delete", "service"}] {
			t.Errorf("no write on %s by service", table)
		}
	}
}

func testUserEmails(t *testing.T, tdb *testDB) {
	f := newFixture(t, tdb.Admin)
	ctx := context.Background()

	tests := []struct {
		actor string
		want  []uuid.UUID
		code  string
	}{
		{actor: "A", want: []uuid.UUID{f.A}},
		{actor: "B", want: []uuid.UUID{f.B}},
		{actor: "F", want: []uuid.UUID{f.F}},
		{actor: "admin", want: f.users()},
		{actor: "anon", code: codeDenied},
		{actor: "login", code: codeDenied},
	}
	for _, tc := range tests {
		t.Run(tc.actor, func(t *testing.T) {
			t.Parallel()
			var got []uuid.UUID
			var emails []string
			err := runAs(ctx, tdb.App, f.who(tc.actor), func(tx pgx.Tx) error {
				rows, _ := tx.Query(ctx, `SELECT id, email FROM public.user_emails($1)`, f.users())
				for rows.Next() {
					var id uuid.UUID
					var email string
					if err := rows.Scan(&id, &email); err != nil {
						return err
					}
					got, emails = append(got, id), append(emails, email)
				}
				return rows.Err()
			})
			if tc.code != "" {
				if dbtest.SQLState(err) != tc.code {
					t.Fatalf("error = %v, want SQLSTATE %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
			want := slices.Clone(tc.want)
			slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
			if !slices.Equal(got, want) {
				t.Fatalf("ids = %v, want %v", got, want)
			}
			for _, e := range emails {
				if e == "" {
					t.Fatalf("empty email in %v", emails)
				}
			}
		})
	}
}
