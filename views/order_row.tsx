/** One order as a blotter row: `tr#order-ID[data-status]`, swapped in place as events arrive. */
import type { Order } from "../orders/model.ts";
import { isFinal } from "../orders/model.ts";
import { orderSummary, rowTime, STATUS_LABEL, utcText } from "./format.ts";

/** The row; `oob` marks it for an out-of-band swap by id (stream messages). */
export function OrderRow(props: { order: Order; oob?: boolean }) {
  const o = props.order;
  const time = rowTime(o);
  const canCancel = !isFinal(o.status) && o.status !== "pending_cancel";
  return (
    <tr
      id={`order-${o.id}`}
      data-status={o.status}
      class={`order status-${o.status}`}
      {...(props.oob ? { "hx-swap-oob": "true" } : {})}
    >
      <td class="symbol">
        <a href={`/orders/${o.id}`}>{o.symbol}</a>
        <small>{o.asset_class.replace("_", " ")}</small>
      </td>
      <td class="what">{orderSummary(o)}</td>
      <td class="status">
        <span class={`badge badge-${o.status}`}>{STATUS_LABEL[o.status]}</span>
        {o.reject_reason ? <span class="reason">{o.reject_reason}</span> : null}
      </td>
      <td class="fill">
        {o.qty !== null
          ? <progress value={o.filled_qty} max={o.qty}>{o.filled_qty} of {o.qty}</progress>
          : null}
        <span class="filled">
          {o.filled_qty}
          {o.qty !== null ? ` / ${o.qty}` : ""}
          {o.filled_avg_price ? ` @ ${o.filled_avg_price}` : ""}
        </span>
      </td>
      <td class="when">
        <time datetime={time.at} data-verb={time.verb}>{time.verb} {utcText(time.at)}</time>
      </td>
      <td class="actions">
        {canCancel
          ? (
            <form
              method="post"
              action={`/orders/${o.id}/cancel`}
              hx-post={`/orders/${o.id}/cancel`}
              hx-swap="none"
            >
              <button type="submit" class="cancel">Cancel</button>
            </form>
          )
          : null}
      </td>
    </tr>
  );
}
