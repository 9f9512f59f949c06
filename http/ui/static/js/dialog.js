// Modal dialogs built on <dialog>: focus is trapped by the browser, Escape
// cancels, and focus returns to the element that opened it.
import { h } from './dom.js';

/**
 * openDialog shows a modal with a title, body nodes and buttons. onSubmit
 * runs when the primary button is pressed (or the form submitted); if it
 * returns false or throws, the dialog stays open and shows the error.
 * Resolves to true when submitted, false when cancelled.
 */
export function openDialog({ title, body, submitLabel = 'Save', danger = false, testid, onSubmit }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const err = h('p', { class: 'error-text', role: 'alert', 'data-testid': (testid || 'dialog') + '-error', hidden: true });
    const submit = h('button', { type: 'submit', class: danger ? 'primary danger-fill' : 'primary', 'data-testid': (testid || 'dialog') + '-submit' }, submitLabel);
    const cancel = h('button', { type: 'button', 'data-testid': (testid || 'dialog') + '-cancel' }, 'Cancel');
    const titleId = 'dlg-' + Math.random().toString(36).slice(2);
    const form = h('form', { method: 'dialog' },
      h('div', { class: 'dlg-head' }, h('h2', { id: titleId }, title)),
      h('div', { class: 'dlg-body' }, body, err),
      h('div', { class: 'dlg-foot' }, cancel, submit));
    const dlg = h('dialog', { 'aria-labelledby': titleId, 'data-testid': testid }, form);
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      if (opener && opener.focus) opener.focus();
      resolve(ok);
    };
    cancel.addEventListener('click', () => finish(false));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); finish(false); });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      submit.disabled = true;
      err.hidden = true;
      try {
        const r = onSubmit ? await onSubmit() : true;
        if (r === false) { submit.disabled = false; return; }
        finish(true);
      } catch (ex) {
        err.textContent = ex.message || String(ex);
        err.hidden = false;
        submit.disabled = false;
      }
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    const first = form.querySelector('input, select, textarea');
    (first || submit).focus();
  });
}

/** confirmDialog asks a yes/no question. */
export function confirmDialog(title, message, { confirmLabel = 'Confirm', danger = false, testid = 'confirm' } = {}) {
  return openDialog({ title, body: h('p', null, message), submitLabel: confirmLabel, danger, testid });
}
