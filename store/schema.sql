-- Blotter's Postgres schema. Applied at every start, idempotently, under an advisory lock (two
-- instances starting together do not race); `blotter_schema.version` records what is applied.
-- Bodies are `json` (not jsonb) so the API's field order survives the round trip; nothing queries
-- inside them.

create table if not exists blotter_schema (
  id boolean primary key default true check (id),
  version integer not null
);

-- The latest state of every order. `final` drives the open/closed list filters.
create table if not exists orders (
  id uuid primary key,
  user_id text not null,
  client_order_id text,
  final boolean not null,
  body json not null,
  unique (user_id, client_order_id)
);
-- Paging newest first (UUIDv7 sorts by time), with and without the open/closed filter.
create index if not exists orders_by_user on orders (user_id, id desc);
create index if not exists orders_by_user_final on orders (user_id, final, id desc);
-- The simulator resumes working orders at start.
create index if not exists orders_working on orders (id) where not final;

-- One row per user: the latest seq. `applyReport` locks it, so per user, seq order is commit order.
create table if not exists user_seqs (
  user_id text primary key,
  seq bigint not null
);

-- The event log: the truth every stream, instance and client resumes from.
create table if not exists order_events (
  user_id text not null,
  seq bigint not null,
  order_id uuid not null,
  at timestamptz not null,
  body json not null,
  primary key (user_id, seq)
);
create index if not exists order_events_by_order on order_events (order_id, seq);
create index if not exists order_events_by_at on order_events (at);

-- Idempotency: the first result of every exec_id.
create table if not exists executions (
  exec_id text primary key,
  user_id text not null,
  order_id uuid not null,
  seqs bigint[] not null
);

create table if not exists sessions (
  id text primary key,
  user_id text not null,
  token_hash text unique,
  label text not null,
  created_at timestamptz not null,
  last_seen_at timestamptz not null,
  revoked_at timestamptz
);
create index if not exists sessions_by_user on sessions (user_id) where revoked_at is null;

create table if not exists push_subscriptions (
  endpoint text primary key,
  user_id text not null,
  session_id text not null,
  keys json not null,
  created_at timestamptz not null
);
create index if not exists push_subscriptions_by_user on push_subscriptions (user_id);

-- Native apps' push tokens (FCM, APNs), one row per token, tied to the device session that
-- registered it: deleted with the session; registered again elsewhere, the row moves.
-- Keyed by the token's SHA-256 (hex): a token may be 4,096 characters (CONTRACT), more than a
-- btree entry holds (~2,700 bytes).
create table if not exists push_devices (
  token_hash text primary key,
  token text not null,
  platform text not null check (platform in ('fcm', 'apns')),
  user_id text not null,
  session_id text not null,
  created_at timestamptz not null
);
create index if not exists push_devices_by_user on push_devices (user_id);
create index if not exists push_devices_by_session on push_devices (session_id);

-- Which instance sends the alerts (Web Push, FCM, APNs) for an event: the first to insert the row. Pruned with
-- the events.
create table if not exists alert_claims (
  user_id text not null,
  seq bigint not null,
  claimed_at timestamptz not null,
  primary key (user_id, seq)
);
create index if not exists alert_claims_by_time on alert_claims (claimed_at);

create table if not exists settings (
  key text primary key,
  value text not null
);

-- The SQL entry point for existing backends: insert an execution report (the same JSON as
-- POST /api/v1/executions) and Blotter validates and applies it exactly as the API does, then
-- records the answer the API would have given:
--   insert into execution_inbox (report) values ('{"order_id": "...", "exec_id": "...", ...}');
--   select result_status, result from execution_inbox where id = ...;  -- 201, 200, 400, 404, 409
create table if not exists execution_inbox (
  id bigserial primary key,
  report jsonb not null,
  received_at timestamptz not null default now(),
  claimed_at timestamptz,
  processed_at timestamptz,
  result_status integer,
  result jsonb
);
create index if not exists execution_inbox_pending on execution_inbox (id)
  where processed_at is null;

-- Wakes every instance's listener; one of them claims the rows (for update skip locked).
create or replace function blotter_inbox_notify() returns trigger
language plpgsql as $$
begin
  perform pg_notify('blotter_inbox:' || tg_table_schema, '');
  return null;
end
$$;
create or replace trigger execution_inbox_notify after insert on execution_inbox
  for each statement execute function blotter_inbox_notify();

-- The fast write (store/pg/fast_write.ts) advances each user's seq only where it is still the one
-- its writer cached, and calls this with how many it advanced: any fewer and the whole statement
-- fails (SQLSTATE BL001) and writes nothing; the writer then reads afresh under row locks.
create or replace function blotter_expect_advanced(advanced integer, expected integer)
returns boolean
language plpgsql as $$
begin
  if advanced <> expected then
    raise exception 'stale state: % of % user seqs were as expected', advanced, expected
      using errcode = 'BL001';
  end if;
  return true;
end
$$;

insert into blotter_schema (id, version) values (true, 4)
  on conflict (id) do update set version = excluded.version;
