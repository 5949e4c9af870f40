// Drives rkube with the JavaScript client (@kubernetes/client-node) the way its users do, and prints one
// JSON object of what it saw; conformance/run.py's js_client scenario checks it.
// Usage: node client.mjs KUBECONFIG NAMESPACE
import * as k8s from '@kubernetes/client-node';

const [kubeconfig, ns] = process.argv.slice(2);
const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);
const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
const seen = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const ssa = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply);

const created = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'js', labels: { app: 'js' } }, data: { a: '1' } } });
seen.createdIsDate = created.metadata.creationTimestamp instanceof Date;
seen.merge = (await core.patchNamespacedConfigMap({ name: 'js', namespace: ns, body: { data: { b: '2' } } }, merge)).data;
seen.jsonPatch = (await core.patchNamespacedConfigMap({ name: 'js', namespace: ns, body: [{ op: 'add', path: '/data/c', value: '3' }] })).data;
const applied = await core.patchNamespacedConfigMap({ name: 'js-ssa', namespace: ns, fieldManager: 'js-tool', force: true, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'js-ssa' }, data: { x: 'y' } } }, ssa);
seen.ssaManagers = applied.metadata.managedFields.map((m) => `${m.manager}/${m.operation}`);
try {
  await core.readNamespacedConfigMap({ name: 'missing', namespace: ns });
  seen.missing = 'found';
} catch (e) {
  seen.missing = { code: e.code, reason: JSON.parse(e.body).reason };
}
const dep = await apps.createNamespacedDeployment({ namespace: ns, body: { metadata: { name: 'd' }, spec: { selector: { matchLabels: { app: 'd' } }, template: { metadata: { labels: { app: 'd' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } } } });
seen.strategy = dep.spec.strategy.type;
seen.listed = (await core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'app=js' })).items.map((c) => c.metadata.name);

// An informer: list, then watch from the list's resourceVersion.
const events = [];
const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${ns}/configmaps`, () => core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'app=js' }), 'app=js');
informer.on('add', (o) => events.push(`add ${o.metadata.name}`));
informer.on('update', (o) => events.push(`update ${o.metadata.name}`));
informer.on('delete', (o) => events.push(`delete ${o.metadata.name}`));
await informer.start();
await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'js-2', labels: { app: 'js' } } } });
await core.patchNamespacedConfigMap({ name: 'js-2', namespace: ns, body: { data: { z: '1' } } }, merge);
await core.deleteNamespacedConfigMap({ name: 'js-2', namespace: ns });
for (let i = 0; i < 40 && !events.includes('delete js-2'); i++) await sleep(100);
await informer.stop();
seen.informer = events;

// The generic object API: discovery-driven read, list and delete.
seen.generic = (await objects.read({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd', namespace: ns } })).metadata.name;
seen.genericList = (await objects.list('v1', 'ConfigMap', ns)).items.length;
seen.genericDelete = (await objects.delete({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'js-ssa', namespace: ns } })).status;
console.log(JSON.stringify(seen));
