-- The orders example's own tables (public schema); oncepipe's live in the oncepipe schema.
-- Idempotent: `python -m orders setup` applies it at every run.

-- Written by the orders service, one row per client request id (a retry finds its row).
CREATE TABLE IF NOT EXISTS public.orders (
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    order_id     uuid PRIMARY KEY,
    request_id   text NOT NULL UNIQUE,
    customer_id  text NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    channel      text NOT NULL,
    placed_at    timestamptz NOT NULL
);

-- Written by the `totals` handler: one row per customer and consumer group.
CREATE TABLE IF NOT EXISTS public.customer_totals (
    consumer_group text NOT NULL,
    customer_id    text NOT NULL,
    orders         bigint NOT NULL,
    amount_cents   bigint NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (consumer_group, customer_id)
);

-- Written by the `milestone_log` handler (a second consumer group). No ON CONFLICT in its
-- insert: a milestone recorded twice would be a bug, and the primary key refuses it.
CREATE TABLE IF NOT EXISTS public.customer_milestones (
    consumer_group text NOT NULL,
    customer_id    text NOT NULL,
    milestone      text NOT NULL,
    threshold      bigint NOT NULL,
    order_id       uuid NOT NULL,
    reached_at     timestamptz NOT NULL,
    event_id       uuid NOT NULL,
    PRIMARY KEY (consumer_group, customer_id, milestone, threshold)
);
