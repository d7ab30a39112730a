/** One order as a blotter row: `tr#order-ID[data-status]`, swapped in place as events arrive. */
import type { Order } from "../orders/model.ts";
import { isFinal } from "../orders/model.ts";
import { priceText, rowTime, sizeText, STATUS_LABEL, utcText } from "./format.ts";

/** Columns of the orders table; figures (`num`) are right-aligned in tabular digits. */
const COLUMNS: ReadonlyArray<[label: string, className: string]> = [
  ["Symbol", "symbol"],
  ["Side", "side"],
  ["Qty", "qty num"],
  ["Price", "price num"],
  ["Status", "status"],
  ["Filled", "fill num"],
  ["When", "when"],
  ["Actions", "actions"],
];

/** How many columns a row spans (for rows that fill the table's width). */
export const COLUMN_COUNT: number = COLUMNS.length;

/** The table's head row; the actions column's heading is for screen readers only. */
export function OrdersHead() {
  return (
    <thead>
      <tr>
        {COLUMNS.map(([label, cls]) => (
          <th scope="col" class={cls}>
            {cls === "actions" ? <span class="visually-hidden">{label}</span> : label}
          </th>
        ))}
      </tr>
    </thead>
  );
}

/** The row; `oob` marks it for an out-of-band swap by id (stream messages). */
export function OrderRow(props: { order: Order; oob?: boolean }) {
  const o = props.order;
  const time = rowTime(o);
  const canCancel = !isFinal(o.status) && o.status !== "pending_cancel";
  const side = o.side === "buy" ? "Buy" : "Sell";
  const when = <time datetime={time.at} data-verb={time.verb}>{time.verb} {utcText(time.at)}</time>;
  return (
    <tr
      id={`order-${o.id}`}
      data-status={o.status}
      class={`order status-${o.status}`}
      {...(props.oob ? { "hx-swap-oob": "true" } : {})}
    >
      <td class="symbol">
        <a href={`/orders/${o.id}`}>{o.symbol}</a>
        <small class="asset">{o.asset_class.replace("_", " ")}</small>
        {/* On a phone the side, size and price columns fold into this line. */}
        <small class="sub">
          <span>{side} {sizeText(o)}</span> <span>· {priceText(o)}</span>
        </small>
      </td>
      <td class="side">
        <span class={`side-${o.side}`}>{side}</span>
      </td>
      <td class="qty num">{sizeText(o)}</td>
      <td class="price num">{priceText(o)}</td>
      <td class="status">
        <span class={`badge badge-${o.status}`}>{STATUS_LABEL[o.status]}</span>
        {o.reject_reason ? <span class="reason">{o.reject_reason}</span> : null}
        <small class="when-sub" aria-hidden="true">{when}</small>
      </td>
      <td class="fill num">
        {o.qty !== null
          ? (
            <progress
              value={o.filled_qty}
              max={o.qty}
              aria-label={`${o.filled_qty} of ${o.qty} filled`}
            >
              {o.filled_qty} of {o.qty}
            </progress>
          )
          : null}
        {/* Three values that may wrap between them on a phone, never inside one. */}
        <span class="filled">
          <span>{o.filled_qty}</span>
          {o.qty !== null
            ? (
              <>
                {" "}
                <span>/ {o.qty}</span>
              </>
            )
            : null}
          {o.filled_avg_price
            ? (
              <>
                {" "}
                <span>@ {o.filled_avg_price}</span>
              </>
            )
            : null}
        </span>
      </td>
      <td class="when">{when}</td>
      <td class="actions">
        {canCancel
          ? (
            <form
              method="post"
              action={`/orders/${o.id}/cancel`}
              hx-post={`/orders/${o.id}/cancel`}
              hx-swap="none"
            >
              <button
                type="submit"
                class="cancel"
                aria-label={`Cancel ${side.toLowerCase()} ${sizeText(o)} ${o.symbol}`}
              >
                Cancel
              </button>
            </form>
          )
          : null}
      </td>
    </tr>
  );
}
