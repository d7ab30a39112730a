/**
 * The order ticket, `form#order-ticket`, whose controls carry the API's field names. On a wide
 * screen it is the blotter's left column; on a phone it is a sheet that the "New order" button
 * opens over the rows (app.js moves focus into it and back). Without scripts it simply follows
 * the rows on a phone, so it always works as a plain form.
 */
import { SYMBOLS } from "../orders/symbols.ts";

/** Symbols the ticket suggests, with their asset class: the ones the simulator trades. */
export const TICKET_SYMBOLS: ReadonlyArray<[string, string]> = Object.entries(SYMBOLS)
  .map(([symbol, { assetClass }]) => [symbol, assetClass]);

/** The button that opens the ticket on a phone (hidden on wide screens and without scripts). */
export function NewOrderButton() {
  return (
    <button
      type="button"
      id="new-order"
      class="new-order"
      aria-controls="ticket-panel"
      aria-expanded="false"
    >
      <span aria-hidden="true">+</span> New order
    </button>
  );
}

/** The ticket in its panel. */
export function Ticket(props: { error?: string }) {
  return (
    <section id="ticket-panel" class="ticket-panel" aria-labelledby="ticket-title">
      <form id="order-ticket" method="post" action="/orders" hx-post="/orders" hx-swap="none">
        <div class="ticket-head">
          <h2 id="ticket-title">New order</h2>
          <button type="button" id="ticket-close" class="ticket-close">Close</button>
        </div>
        <label class="field-symbol">
          Symbol
          <input
            name="symbol"
            list="symbols"
            required
            maxlength={16}
            autocomplete="off"
            autocapitalize="characters"
            spellcheck={false}
            placeholder="AAPL"
          />
        </label>
        <datalist id="symbols">
          {TICKET_SYMBOLS.map(([s, c]) => (
            <option value={s} data-asset-class={c}>{c.replace("_", " ")}</option>
          ))}
        </datalist>
        <label>
          Asset class
          <select name="asset_class">
            <option value="stock" selected>Stock</option>
            <option value="etf">ETF</option>
            <option value="mutual_fund">Mutual fund</option>
            <option value="crypto">Crypto</option>
          </select>
        </label>
        <fieldset class="side">
          <legend>Side</legend>
          <label class="side-buy">
            <input type="radio" name="side" value="buy" checked /> Buy
          </label>
          <label class="side-sell">
            <input type="radio" name="side" value="sell" /> Sell
          </label>
        </fieldset>
        <label>
          Type
          <select name="type">
            <option value="market" selected>Market</option>
            <option value="limit">Limit</option>
            <option value="stop">Stop</option>
            <option value="stop_limit">Stop limit</option>
          </select>
        </label>
        <label class="field-qty">
          Quantity <input name="qty" inputmode="decimal" autocomplete="off" placeholder="10" />
        </label>
        <label class="field-notional">
          or amount ($){" "}
          <input name="notional" inputmode="decimal" autocomplete="off" placeholder="250.00" />
        </label>
        <label class="field-limit" hidden>
          Limit price <input name="limit_price" inputmode="decimal" autocomplete="off" />
        </label>
        <label class="field-stop" hidden>
          Stop price <input name="stop_price" inputmode="decimal" autocomplete="off" />
        </label>
        <label class="field-tif">
          Time in force
          <select name="time_in_force">
            <option value="day" selected>Day</option>
            <option value="gtc">Good till canceled</option>
            <option value="ioc">Immediate or cancel</option>
            <option value="fok">Fill or kill</option>
          </select>
        </label>
        <p id="ticket-error" class="error" role="alert">{props.error ?? ""}</p>
        <button type="submit" class="place">Place order</button>
      </form>
    </section>
  );
}
