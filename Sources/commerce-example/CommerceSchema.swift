/// The commerce service's tables (the source of truth) and its outbox.
enum CommerceSchema {
    static let statements = [
        """
        CREATE TABLE IF NOT EXISTS orders (
            id text PRIMARY KEY, customer_id text NOT NULL, total_cents bigint NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now())
        """,
        """
        CREATE TABLE IF NOT EXISTS order_lines (
            order_id text NOT NULL REFERENCES orders (id), line int NOT NULL, product_id text NOT NULL,
            quantity int NOT NULL, price_cents bigint NOT NULL, PRIMARY KEY (order_id, line))
        """,
        """
        CREATE TABLE IF NOT EXISTS payments (
            order_id text PRIMARY KEY REFERENCES orders (id), status text NOT NULL CHECK (status IN ('completed', 'failed')),
            amount_cents bigint NOT NULL, reason text, paid_at timestamptz NOT NULL DEFAULT now())
        """,
        """
        CREATE TABLE IF NOT EXISTS product_likes (
            user_id text NOT NULL, product_id text NOT NULL, liked boolean NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, product_id))
        """,
        """
        CREATE TABLE IF NOT EXISTS product_views (
            id bigserial PRIMARY KEY, user_id text NOT NULL, product_id text NOT NULL, viewed_at timestamptz NOT NULL DEFAULT now())
        """,
        """
        CREATE TABLE IF NOT EXISTS outbox_event (
            id uuid PRIMARY KEY, topic text NOT NULL, aggregate_type text, aggregate_id text NOT NULL,
            event_type text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())
        """,
    ]
}

/// The back office's read model, kept by `commerce-example metrics`.
enum BackOfficeSchema {
    static let statements = [
        """
        CREATE TABLE IF NOT EXISTS product_metrics (
            product_id text PRIMARY KEY, like_count bigint NOT NULL DEFAULT 0, view_count bigint NOT NULL DEFAULT 0,
            sales_count bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now())
        """,
        """
        CREATE TABLE IF NOT EXISTS order_status (
            order_id text PRIMARY KEY, status text NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
            updated_at timestamptz NOT NULL DEFAULT now())
        """,
    ]
}
