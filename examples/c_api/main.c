/* Classify and train the CS231n spiral with an object file built by netc:
 *
 *   netc build examples/spiral.net --weights spiral.safetensors   # spiral_net.o + spiral_net.h
 *   cc -I. examples/c_api/main.c spiral_net.o -lm -o spiral && ./spiral
 *
 * The program owns every buffer; the object computes. It scores the embedded weights, then
 * trains them further with the file's optimizer and learning rate, and scores again. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "spiral_net.h"

#define POINTS 100 /* per class */
#define CLASSES 3
#define N (POINTS * CLASSES)

/* The lecture's spiral: three arms of POINTS points with a little deterministic noise. */
static void spiral(float *x, float *labels) {
    unsigned state = 12345;
    for (int c = 0; c < CLASSES; c++) {
        for (int i = 0; i < POINTS; i++) {
            state = state * 1103515245u + 12345u;
            float noise = ((state >> 16) % 1000 / 1000.0f - 0.5f) * 0.4f;
            float r = (float)i / POINTS, t = c * 4.0f + 4.0f * r + noise;
            x[2 * (c * POINTS + i)] = r * sinf(t);
            x[2 * (c * POINTS + i) + 1] = r * cosf(t);
            labels[c * POINTS + i] = (float)c;
        }
    }
}

static void *buffer(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static double accuracy(const float *x, const float *labels, float *const *params) {
    float *scores = buffer(sizeof(float) * N * SPIRAL_NET_SCORES_ROW);
    void *ws = buffer((size_t)spiral_net_forward_workspace_size(N));
    spiral_net_forward(N, x, (const float *const *)params, scores, ws);
    int correct = 0;
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int k = 1; k < CLASSES; k++)
            if (scores[i * CLASSES + k] > scores[i * CLASSES + best]) best = k;
        correct += best == (int)labels[i];
    }
    free(scores);
    free(ws);
    return (double)correct / N;
}

int main(void) {
    float *x = buffer(sizeof(float) * N * SPIRAL_NET_X_ROW), *labels = buffer(sizeof(float) * N);
    spiral(x, labels);
    float *params[SPIRAL_NET_NUM_PARAMS];
    for (int i = 0; i < SPIRAL_NET_NUM_PARAMS; i++) params[i] = buffer(sizeof(float) * spiral_net_param_sizes[i]);
    spiral_net_init_params(params);
    printf("embedded weights: accuracy %.3f\n", accuracy(x, labels, params));

    void *ws = buffer((size_t)spiral_net_train_step_workspace_size(N));
    float loss = 0;
    int steps = 2000;
    for (int step = 0; step < steps; step++)
        spiral_net_train_step(N, x, labels, (float)spiral_net_learning_rate(step, steps), params, &loss, ws);
    printf("after %d more steps: loss %.4f, accuracy %.3f\n", steps, loss, accuracy(x, labels, params));
    return 0;
}
